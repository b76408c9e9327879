// Command scimserve runs dirsync's SCIM 2.0 server alone, for the peer
// suites and the load benchmark: one SCIM source mounted at
// /scim/<source>/v2, resources kept in an in-memory store, a bbolt file or
// Redis.
//
//	SCIM_TOKEN=s3cret scimserve -listen 127.0.0.1:8080 -source corp [-redis 127.0.0.1:6379 | -bolt state.db]
//
// It prints "listening on http://ADDR/scim/SOURCE/v2" once it accepts
// connections, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/scim"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/memstore"
	"github.com/dirsync/dirsync/state/redisstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scimserve:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	name := flag.String("source", "corp", "SCIM source name (the URL is /scim/NAME/v2)")
	redisAddr := flag.String("redis", "", "Redis address (host:port); empty keeps resources in memory")
	boltPath := flag.String("bolt", "", "embedded state file (bbolt); empty keeps resources in memory")
	verbose := flag.Bool("v", false, "log every accepted change")
	watch := flag.Bool("watch", true, "consume the change feed (as the daemon does)")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (profiling the benchmark)")
	flag.Parse()
	token := os.Getenv("SCIM_TOKEN")
	if token == "" {
		return errors.New("set SCIM_TOKEN to the bearer token clients must send")
	}
	logger := zap.NewNop()
	if *verbose {
		l, err := zap.NewDevelopment()
		if err != nil {
			return err
		}
		logger = l
	}
	store, err := openStore(*redisAddr, *boltPath)
	if err != nil {
		return err
	}
	defer store.Close()
	cfg, err := config.Parse(strings.NewReader(fmt.Sprintf(
		"sources:\n  - name: %s\n    type: scim\n    tokens: [\"${SCIM_TOKEN}\"]\n", *name)))
	if err != nil {
		return err
	}
	srv, err := scim.New(cfg.Sources[0], store, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.LoadIndex(ctx); err != nil {
		return err
	}
	if *watch {
		go func() {
			_ = srv.Watch(ctx, func(ch source.Change) {
				logger.Debug("change", zap.Int("upserts", len(ch.Upserts)), zap.Int("deletes", len(ch.Deletes)), zap.String("reason", ch.Reason))
			})
		}()
	}
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() // DefaultServeMux carries net/http/pprof
	}
	mux := http.NewServeMux()
	mux.Handle(srv.MountPath()+"/", srv.Handler())
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on http://%s%s\n", ln.Addr(), srv.MountPath())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func openStore(redisAddr, boltPath string) (state.Store, error) {
	if boltPath != "" {
		return bolt.Open(boltPath, bolt.Options{})
	}
	if redisAddr == "" {
		return memstore.New(memstore.Options{}), nil
	}
	return redisstore.New(config.Redis{Addrs: []string{redisAddr}, KeyPrefix: "dirsync:"}, redisstore.Options{})
}
