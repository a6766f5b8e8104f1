// Command passport-load drives whole Passport logins against a running IdP over HTTP, as many employees would:
// each virtual browser sends an Atlassian-shaped AuthnRequest, types its email, reads the number, waits on the
// page's event stream while the virtual phone approves with its own device key (in process), and checks the
// signed Response as the SP would. It sets up its own application and users through the admin API, deletes them
// at the end, and reports logins/s, errors by kind, latency percentiles per step and the IdP's CPU per login
// beside an RSA-2048 signature timed in the same run. With --redis it also reads the IdP's Redis: its memory per
// user and per login, and its keys on each master.
//
// Exit status: 0 when every login succeeded, 1 when one failed or the run could not be set up or cleaned up
// (the report is still printed when there is one), 2 usage.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/winkk/passport/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The Redis client's own messages (each failed dial of --redis) would print on standard error beside the one
	// line that says what failed; the errors that matter come back from the calls.
	store.SetLogger(slog.New(slog.DiscardHandler))
	go func() {
		<-ctx.Done()
		stop() // from now on a second Ctrl-C ends the program at once, without cleaning up
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
