// Command passport-idp is the Passport server: a SAML 2.0 Identity Provider whose users sign in by approving
// on their enrolled phone. With no configuration it runs the whole flow on embedded defaults.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd := run
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "keys" {
		cmd, args = runKeys, args[1:]
	}
	if err := cmd(ctx, args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "passport-idp:", err)
		os.Exit(1)
	}
}
