package main

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestArrivalStamps: a stamped connection reads what its peer wrote, knows when those bytes reached this
// machine (after they were written, before they were read), and still honours read deadlines and the end of
// the stream as a TCP connection does.
func TestArrivalStamps(t *testing.T) {
	defer keepStamping()()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, ok := stamped(raw).(*arrivalConn)
	if !ok {
		t.Fatalf("stamped gave %T, want the receive timestamps on", stamped(raw))
	}
	defer c.Close()
	if _, ok := c.arrived(); ok {
		t.Error("an arrival before anything was read")
	}

	// The kernel turns stamping on a moment after it is first asked (see keepStamping): until then a read
	// knows no arrival.
	buf := make([]byte, 64)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := peer.Write([]byte(":\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.arrived(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kernel stamped nothing received within 5s of being asked to")
		}
		time.Sleep(time.Millisecond)
	}
	for _, msg := range []string{"event: state\n", "data: approved\n\n"} {
		written := time.Now()
		if _, err := peer.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the bytes wait in the socket: arrival is when they came, not this read
		read := time.Now()
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
		}
		at, ok := c.arrived()
		// Kernel stamps are the wall clock: compare them with the wall clock, to the microsecond it may round to.
		if !ok || at.Before(written.Round(0).Add(-time.Microsecond)) || !at.Before(read.Round(0)) {
			t.Errorf("%q arrived at %v (ok %v); written at %v, read at %v", msg, at, ok, written, read)
		}
	}

	if err := c.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past its deadline: %v, want a timeout", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
	c.Close()
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v, want net.ErrClosed", err)
	}
}
