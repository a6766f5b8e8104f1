// Command passport-device is the reference device client of Passport: it does
// over the device API (api/openapi.yaml) what the phone app does — enroll a
// P-256 device key, list devices, pull pending login challenges, approve or
// deny them. Tests, demos, load runs and the mobile team use it.
//
// Its state file (JSON: server URL, device ID, email, private key as PEM
// PKCS#8) is created with mode 0600. Results go to stdout as JSON; an error is
// one line on stderr. Exit status: 0 ok, 1 refused by the server or failed,
// 2 usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
