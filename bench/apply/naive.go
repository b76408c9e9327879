package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

// runNaive makes the same calls the connector makes (POST /api/users/{u},
// then POST /api/users/{u}/disable) one at a time, with no rate limiter,
// waiting out Retry-After on a 429: the reference dirsync is compared with.
func runNaive(ctx context.Context, o options) (result, error) {
	res := result{sc: scenario{backend: "-"}}
	fake := netmakerfake.New(netmakerfake.Options{})
	app := NewApp(fake, AppOptions{Rate: o.rate, Burst: o.appBurst, Latency: o.latency})
	base, stop, err := serve(app)
	if err != nil {
		return res, err
	}
	defer stop()
	token := fake.AdminToken()
	client := &http.Client{Timeout: 30 * time.Second}

	// call sends one request until it is not rate limited.
	call := func(method, path string, body any) error {
		var b []byte
		if body != nil {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		for {
			req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusTooManyRequests:
				wait := connector.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
				t := time.NewTimer(max(wait, time.Second))
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
				continue
			case resp.StatusCode/100 != 2:
				return fmt.Errorf("%s %s: %s", method, path, resp.Status)
			}
			return nil
		}
	}

	for _, st := range []string{"create", "suspend"} {
		p := phase{name: st, want: o.n, runs: 1}
		acc0, lim0 := app.Counts()
		start := time.Now()
		for i := range o.n {
			name := benchName(i)
			var err error
			if st == "create" {
				pw := make([]byte, 24)
				_, _ = rand.Read(pw)
				err = call(http.MethodPost, "/api/users/"+name, map[string]any{"username": name,
					"password": base64.RawURLEncoding.EncodeToString(pw), "auth_type": "oauth", "platform_role_id": "service-user",
					"display_name": fmt.Sprintf("Bench %d", i), "is_mfa_enabled": false})
			} else {
				err = call(http.MethodPost, "/api/users/"+name+"/disable", nil)
			}
			if err != nil {
				return res, err
			}
			p.applied++
		}
		p.wall = time.Since(start)
		acc1, lim1 := app.Counts()
		p.requests, p.limited = acc1-acc0, lim1-lim0
		p.done = converged(fake, o.n, st == "suspend")
		if p.done != o.n {
			return res, fmt.Errorf("%s: only %d of %d accounts in the wanted state", st, p.done, o.n)
		}
		res.phases = append(res.phases, p)
	}
	return res, nil
}
