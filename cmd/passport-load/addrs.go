package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// sources hands out the local addresses the virtual browsers and phones connect from. The IdP limits each
// client address (logins parked a minute, event streams open at once), as it should: a real crowd of employees
// comes from many addresses. So on a loopback IdP the load comes from many addresses of 127.0.0.0/8, which Linux
// routes to the loopback interface with no set-up; anywhere else it comes from this machine's own address, and the
// IdP's per-address limits apply to the whole run. Safe for concurrent use.
type sources struct {
	addrs []netip.Addr // empty: the system picks the address
	next  atomic.Uint64
	// Note says where the load comes from, for the report.
	Note string
}

// firstSource is the first address handed out on a loopback IdP; the pool counts up from it, skipping the .0 and
// .255 of each /24.
var firstSource = netip.AddrFrom4([4]byte{127, 100, 0, 1})

// newSources picks the source addresses for an IdP at host: n addresses of 127.0.0.0/8 when host is an IPv4
// loopback address or resolves only to loopback addresses, the system's choice otherwise.
func newSources(ctx context.Context, host string, n int) (*sources, error) {
	v4, v6, err := loopback(ctx, host)
	if err != nil {
		return nil, err
	}
	switch {
	case v4:
		s := &sources{addrs: make([]netip.Addr, n)}
		for i := range n {
			s.addrs[i] = sourceAt(i)
		}
		s.Note = fmt.Sprintf("%d loopback addresses, %s to %s", n, s.addrs[0], s.addrs[n-1])
		if n == 1 {
			s.Note = "one loopback address, " + s.addrs[0].String()
		}
		return s, nil
	case v6:
		return &sources{Note: "one address: the IdP is on [::1], and an IPv6 client counts by its /64, so its per-address limits apply to the whole run"}, nil
	default:
		return &sources{Note: "this machine's own address: the IdP is not on loopback, so its per-address limits (logins parked a minute, event streams at once) apply to the whole run"}, nil
	}
}

// sourceAt is the i-th address of the loopback pool.
func sourceAt(i int) netip.Addr {
	b := firstSource.As4()
	block, host := i/254, i%254+1 // 254 usable addresses in each /24
	return netip.AddrFrom4([4]byte{b[0], b[1] + byte(block/256), byte(block % 256), byte(host)})
}

// loopback reports whether host is, or resolves only to, loopback addresses, and whether among them are IPv4 ones.
func loopback(ctx context.Context, host string) (v4, v6 bool, err error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		return ip.IsLoopback() && ip.Is4(), ip.IsLoopback() && ip.Is6(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return false, false, fmt.Errorf("resolve the IdP's host: %w", err)
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if !ip.IsLoopback() {
			return false, false, nil
		}
		if ip.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6 && !v4, nil
}

// Count is how many addresses the load comes from.
func (s *sources) Count() int { return max(1, len(s.addrs)) }

// Loopback reports whether the load is spread over loopback addresses.
func (s *sources) Loopback() bool { return len(s.addrs) > 0 }

// pick returns the next address in turn; the zero Addr means the system's choice.
func (s *sources) pick() netip.Addr {
	if len(s.addrs) == 0 {
		return netip.Addr{}
	}
	return s.addrs[(s.next.Add(1)-1)%uint64(len(s.addrs))]
}

// dialer connects from src (the system's choice for the zero Addr).
func dialer(src netip.Addr) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	return d
}

// rotatingDial connects each new connection from the next address in turn.
func (s *sources) rotatingDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialer(s.pick()).DialContext(ctx, network, addr)
}
