package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/winkk/passport/store"
)

// User statuses.
const (
	UserActive    = "active"
	UserSuspended = "suspended"
)

// User is a person who signs in. Email is the key and, lower-cased, the NameID of most applications.
type User struct {
	Email       string   `json:"email"`
	GivenName   string   `json:"given_name"`
	FamilyName  string   `json:"family_name"`
	DisplayName string   `json:"display_name"`
	Groups      []string `json:"groups"`
	// Roles are what the user may do besides signing in: RoleAdmin runs the admin console.
	Roles     []string  `json:"roles"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// UserPatch holds the fields of a user to create or change; nil means "leave as is".
type UserPatch struct {
	Email       *string   `json:"email"`
	GivenName   *string   `json:"given_name"`
	FamilyName  *string   `json:"family_name"`
	DisplayName *string   `json:"display_name"`
	Groups      *[]string `json:"groups"`
	Roles       *[]string `json:"roles"`
	Status      *string   `json:"status"`
}

// FieldRoles is the user field of its roles (not an attribute applications receive).
const FieldRoles = "roles"

// RoleAdmin lets a user sign in to the admin console (User.Roles). It is the only role.
const RoleAdmin = "admin"

// MarshalJSON writes a user with its lists always present ([] rather than null), also for users stored
// before a list existed.
func (u User) MarshalJSON() ([]byte, error) {
	type plain User
	if u.Groups == nil {
		u.Groups = []string{}
	}
	if u.Roles == nil {
		u.Roles = []string{}
	}
	return json.Marshal(plain(u))
}

// IsAdmin reports whether the user holds RoleAdmin.
func (u User) IsAdmin() bool { return slices.Contains(u.Roles, RoleAdmin) }

// NormalizeEmail checks that s is a plain address (no display name) and returns it lower-cased. Bidi
// controls (U+202E and the like) are refused: they would make the address show as another wherever it is
// shown. Normalizing a normalized address gives it back.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", newErr(ErrInvalid, "email is required")
	}
	if len(s) > 254 {
		return "", newErr(ErrInvalid, "email is too long")
	}
	// Direction overrides and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) are invisible and
	// reorder what is shown: an address holding one reads as another.
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }) {
		return "", newErr(ErrInvalid, "%q holds invisible text-direction characters, which an email address may not", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || !strings.Contains(s, "@") || !plainText(s) || strings.ContainsFunc(s, unicode.IsSpace) ||
		strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }) {
		return "", newErr(ErrInvalid, "%q is not a valid email address", s)
	}
	lower := strings.ToLower(s)
	if len(lower) > 254 { // some capitals have longer small letters (U+023A is 2 bytes, U+2C65 3)
		return "", newErr(ErrInvalid, "email is too long")
	}
	return lower, nil
}

// apply changes u by p and checks every field, returning all their problems at once (an *Error with Fields).
func (p UserPatch) apply(u User) (User, error) {
	var v fieldCheck
	for _, f := range []struct {
		dst   *string
		src   *string
		field string
	}{{&u.GivenName, p.GivenName, FieldGivenName}, {&u.FamilyName, p.FamilyName, FieldFamilyName}, {&u.DisplayName, p.DisplayName, FieldDisplayName}} {
		if f.src != nil {
			*f.dst = strings.TrimSpace(*f.src)
			v.text(f.field, *f.dst, maxNameLen, false)
		}
	}
	if p.Groups != nil {
		u.Groups = trimAll(*p.Groups)
		validateGroups(&v, FieldGroups, u.Groups)
	}
	if p.Roles != nil {
		u.Roles = trimAll(*p.Roles)
		for i, r := range u.Roles {
			if r != RoleAdmin {
				v.add(fmt.Sprintf("%s[%d]", FieldRoles, i), "the only role is %q", RoleAdmin)
			}
		}
		u.Roles = slices.Compact(slices.Sorted(slices.Values(u.Roles)))
	}
	if p.Status != nil {
		u.Status = *p.Status
		v.oneOf("status", u.Status, "status must be \"active\" or \"suspended\"", UserActive, UserSuspended)
	}
	if u.Status == "" {
		u.Status = UserActive
	}
	if u.Groups == nil {
		u.Groups = []string{}
	}
	if u.Roles == nil {
		u.Roles = []string{}
	}
	return u, invalidFields(v.errs)
}

// maxGroups bounds the groups of a user, and of an application's allowed groups.
const maxGroups = 100

// validateGroups checks a list of group names: at most maxGroups, each 1 to maxNameLen characters of plain
// text.
func validateGroups(v *fieldCheck, field string, groups []string) {
	if len(groups) > maxGroups {
		v.add(field, "at most %d %s", maxGroups, field)
	}
	for i, g := range groups {
		switch {
		case g == "" || len(g) > maxNameLen:
			v.add(fmt.Sprintf("%s[%d]", field, i), "group names must be 1 to %d characters", maxNameLen)
		case !plainText(g):
			v.add(fmt.Sprintf("%s[%d]", field, i), "a group name holds characters that are not allowed (control characters, U+FFFE, U+FFFF or invalid UTF-8)")
		}
	}
}

// trimAll returns a copy of ss with each string's surrounding space trimmed.
func trimAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.TrimSpace(s)
	}
	return out
}

// Create creates a user; an existing email is an error matching ErrConflict.
func (s *Users) Create(ctx context.Context, p UserPatch) (User, error) {
	if p.Email == nil {
		return User{}, newErr(ErrInvalid, "email is required")
	}
	email, err := NormalizeEmail(*p.Email)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	u, err := p.apply(User{Email: email, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return User{}, err
	}
	err = s.users.Create(ctx, email, u, 0)
	if errors.Is(err, store.ErrAlreadyExists) {
		return User{}, newErr(ErrConflict, "a user with email %s already exists", email)
	}
	return u, internal("create user", err)
}

// ensureUser returns the user with email, creating an active one when there is none.
func (s *core) ensureUser(ctx context.Context, email string) (User, error) {
	now := s.now()
	u := User{Email: email, Status: UserActive, Groups: []string{}, Roles: []string{}, CreatedAt: now, UpdatedAt: now}
	err := s.users.Create(ctx, email, u, 0)
	if errors.Is(err, store.ErrAlreadyExists) {
		return s.svc.Users.Get(ctx, email)
	}
	return u, internal("create user", err)
}

// Get returns the user with email, or an error matching ErrNotFound.
func (s *Users) Get(ctx context.Context, email string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || len(email) > 254 {
		return User{}, newErr(ErrNotFound, "user not found")
	}
	u, err := s.users.Get(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, newErr(ErrNotFound, "user not found")
	}
	return u, internal("get user", err)
}

// List returns every user ordered by email.
func (s *Users) List(ctx context.Context) ([]User, error) {
	us, err := s.users.List(ctx)
	if err != nil {
		return nil, internal("list users", err)
	}
	sortBy(us, func(u User) string { return u.Email })
	return us, nil
}

// Update applies p to the user atomically. The email cannot change. Suspending a user ends its sessions.
func (s *Users) Update(ctx context.Context, email string, p UserPatch) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if p.Email != nil && !strings.EqualFold(strings.TrimSpace(*p.Email), email) {
		return User{}, newErr(ErrInvalid, "email cannot be changed")
	}
	u, err := s.users.Update(ctx, email, func(cur User) (User, error) {
		next, err := p.apply(cur)
		next.UpdatedAt = s.now()
		return next, err
	})
	if errors.Is(err, store.ErrNotFound) {
		return User{}, newErr(ErrNotFound, "user not found")
	}
	if err != nil {
		return User{}, internal("update user", err)
	}
	if u.Status != UserActive {
		if _, err := s.svc.Sessions.EndUser(ctx, email); err != nil {
			return u, err
		}
	}
	return u, nil
}

// Delete removes the user, its sessions, its outstanding invitations and every device enrolled for it.
func (s *Users) Delete(ctx context.Context, email string) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if err := s.users.Delete(ctx, email); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newErr(ErrNotFound, "user not found")
		}
		return internal("delete user", err)
	}
	if _, err := s.svc.Sessions.EndUser(ctx, email); err != nil {
		return err
	}
	invs, err := s.invitations.IndexIDs(ctx, userIndex(email))
	if err != nil {
		return internal("list invitations", err)
	}
	for _, id := range invs {
		if err := s.invitations.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return internal("withdraw invitation", err)
		}
		// The index goes with its last member, so a deleted user leaves no invitation index behind.
		if err := s.invitations.RemoveFromIndex(ctx, userIndex(email), id); err != nil {
			return internal("unindex invitation", err)
		}
	}
	_, err = s.svc.Devices.RemoveAll(ctx, email)
	return err
}
