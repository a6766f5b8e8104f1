package main

import (
	"context"
	"sync"
)

// user is one of the run's users: its email, its enrolled phone, and how many logins it may still start. The
// IdP pushes to a user at most a few times an hour and lets only a few of its sign-ins wait at once, so the run
// spreads its logins over many users and gives each one login at a time.
type user struct {
	email string
	phone *phone
	left  int
}

// userPool lends users to logins, each to one login at a time, in turn, while they have logins left. Safe for
// concurrent use.
type userPool struct {
	mu   sync.Mutex
	free []*user
	lent int
	wake chan struct{} // closed and replaced when a user comes back or joins
}

func newUserPool() *userPool { return &userPool{wake: make(chan struct{})} }

// add puts new users in the pool.
func (p *userPool) add(us ...*user) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, us...)
	p.signal()
}

// take lends the next user with logins left, counting one. It waits while all such users are lent, and returns
// nil when none has logins left, or when ctx ends.
func (p *userPool) take(ctx context.Context) *user {
	for {
		p.mu.Lock()
		if len(p.free) > 0 {
			u := p.free[0]
			p.free = p.free[1:]
			p.lent++
			u.left--
			p.mu.Unlock()
			return u
		}
		if p.lent == 0 {
			p.mu.Unlock()
			return nil
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// give brings a lent user back; it is lent again while it has logins left.
func (p *userPool) give(u *user) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lent--
	if u.left > 0 {
		p.free = append(p.free, u)
	}
	p.signal()
}

// logins is how many logins the users not lent may still start.
func (p *userPool) logins() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, u := range p.free {
		n += u.left
	}
	return n
}

func (p *userPool) signal() {
	close(p.wake)
	p.wake = make(chan struct{})
}
