// Command scimpull measures the SCIM pull source against a running SCIM
// service provider: it creates users (-create N), or reads them all with the
// source (-mode source) or with a bare paging loop that only decodes each
// page (-mode raw, the reference), and prints one JSON line with the wall
// time, requests and the process's peak RSS. bench/scim-pull.sh drives it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/source/scimpull"
)

func main() {
	base := flag.String("base", "", "SCIM root URL")
	create := flag.Int("create", 0, "create this many users, then exit")
	from := flag.Int("from", 0, "first user number to create")
	mode := flag.String("mode", "source", "source or raw")
	pageSize := flag.Int("page", 100, "count per page")
	conc := flag.Int("conc", 16, "concurrent creates")
	flag.Parse()
	token := os.Getenv("SCIM_TOKEN")
	if *base == "" || token == "" {
		fmt.Fprintln(os.Stderr, "scimpull: -base and SCIM_TOKEN are required")
		os.Exit(2)
	}
	var err error
	switch {
	case *create > 0:
		err = createUsers(*base, token, *from, *create, *conc)
	case *mode == "raw":
		err = measure("raw", func() (int, error) { return rawPull(*base, token, *pageSize) })
	default:
		err = measure("source", func() (int, error) { return sourcePull(*base, token, *pageSize) })
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scimpull:", err)
		os.Exit(1)
	}
}

func measure(name string, f func() (int, error)) error {
	start := time.Now()
	n, err := f()
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]any{"mode": name, "users": n, "seconds": time.Since(start).Seconds(), "peak_rss_mb": peakRSSMB()})
	fmt.Println(string(out))
	return nil
}

func sourcePull(base, token string, page int) (int, error) {
	off := config.Duration(0)
	retries := 0
	src, err := scimpull.New("bench", scimpull.Settings{URL: base, Token: config.NewSecret(token), PageSize: page, RateLimit: 100000, Retries: &retries, PollInterval: &off, Timeout: config.Duration(10 * time.Minute)}, scimpull.Options{})
	if err != nil {
		return 0, err
	}
	snap, err := src.Pull(context.Background())
	if err != nil {
		return 0, err
	}
	return len(snap.Users), nil
}

// rawPull pages /Users with startIndex and decodes each page, nothing else:
// what any client must at least do.
func rawPull(base, token string, page int) (int, error) {
	n, start := 0, 1
	for {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/Users?startIndex=%d&count=%d", base, start, page), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		var lp struct {
			TotalResults int               `json:"totalResults"`
			Resources    []json.RawMessage `json:"Resources"`
		}
		err = json.NewDecoder(resp.Body).Decode(&lp)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		for _, r := range lp.Resources {
			var m map[string]any
			if err := json.Unmarshal(r, &m); err != nil {
				return 0, err
			}
		}
		n += len(lp.Resources)
		start += len(lp.Resources)
		if len(lp.Resources) == 0 || n >= lp.TotalResults {
			return n, nil
		}
	}
}

func createUsers(base, token string, from, n, conc int) error {
	var next atomic.Int64
	next.Store(int64(from))
	end := int64(from + n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= end || firstErr.Load() != nil {
					return
				}
				body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"user%07d","externalId":"e%07d","active":true,"name":{"givenName":"User","familyName":"N%d"},"emails":[{"value":"user%07d@example.test","type":"work","primary":true}],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"%d","department":"d%d"}}`, i, i, i, i, i, i%50)
				req, _ := http.NewRequest("POST", base+"/Users", bytes.NewReader([]byte(body)))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/scim+json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					firstErr.Store(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 201 {
					firstErr.Store(fmt.Errorf("create user%07d: %d", i, resp.StatusCode))
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	return nil
}

// peakRSSMB reads VmHWM from /proc/self/status (0 where there is none).
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
