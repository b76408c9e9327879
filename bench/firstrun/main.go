// Command firstrun writes the HR exports and the config of the first-run
// benchmark (bench/firstrun.sh): n people in n/100 groups as JSON or CSV,
// one record per line group as HR systems write them, and a config that
// reads the export into a fresh embedded state with one memory target.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

func main() {
	n := flag.Int("n", 10000, "people")
	format := flag.String("format", "json", "json or csv")
	dir := flag.String("dir", "", "directory for the export, the config and the state (required)")
	rate := flag.Float64("rate", 10, "the target's rate_limit (calls/s)")
	flag.Parse()
	if *dir == "" || (*format != "json" && *format != "csv") {
		flag.Usage()
		os.Exit(2)
	}
	export := filepath.Join(*dir, "hr."+*format)
	if err := write(export, *n, *format); err != nil {
		log.Fatal(err)
	}
	cfg := fmt.Sprintf(`log: {level: warn}
state:
  backend: embedded
  path: %s
sources:
  - name: hr
    type: file
    path: %s
targets:
  - name: app
    type: memory
    path: %s
    scope: [staff]
    rate_limit: %g
`, filepath.Join(*dir, "state.db"), export, filepath.Join(*dir, "app.json"), *rate)
	if err := os.WriteFile(filepath.Join(*dir, "dirsync.yaml"), []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
}

// write writes n people: every one in staff and in two of n/100 teams, one
// in 50 terminated, one in 10 with an end date.
func write(path string, n int, format string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	groups := max(n/100, 1)
	if format == "csv" {
		fmt.Fprintln(w, "employee_id,username,email,first_name,last_name,status,end_date,groups,department")
	} else {
		fmt.Fprintln(w, `{"users": [`)
	}
	for i := range n {
		status, end := "active", ""
		if i%50 == 0 {
			status = "terminated"
		}
		if i%10 == 0 {
			end = fmt.Sprintf("2031-%02d-%02d", i%12+1, i%28+1)
		}
		g1, g2 := i%groups, (i*7+3)%groups
		if format == "csv" {
			fmt.Fprintf(w, "e%07d,user%07d,user%07d@example.test,First%d,Last%d,%s,%s,staff;team%d;team%d,dept%d\n",
				i, i, i, i, i, status, end, g1, g2, i%40)
			continue
		}
		sep := ","
		if i == n-1 {
			sep = ""
		}
		exp := ""
		if end != "" {
			exp = fmt.Sprintf(`, "end_date": %q`, end)
		}
		fmt.Fprintf(w, "  {\"employee_id\": \"e%07d\", \"username\": \"user%07d\", \"email\": \"user%07d@example.test\",\n   \"first_name\": \"First%d\", \"last_name\": \"Last%d\", \"status\": %q%s,\n   \"groups\": [\"staff\", \"team%d\", \"team%d\"], \"attributes\": {\"department\": \"dept%d\"}}%s\n",
			i, i, i, i, i, status, exp, g1, g2, i%40, sep)
	}
	if format == "json" {
		fmt.Fprintln(w, "]}")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
