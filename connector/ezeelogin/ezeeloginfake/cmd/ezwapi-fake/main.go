// Command ezwapi-fake stands in for Ezeelogin's ezwapi.php API client in
// tests and the demo: `ezwapi-fake --state FILE <action> -api_url URL
// -secret S -user U [-expiry YYYY-MM-DD]`. See package ezeeloginfake.
package main

import (
	"os"

	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
)

func main() {
	os.Exit(ezeeloginfake.Main(os.Args[1:], os.Stdout, os.Stderr))
}
