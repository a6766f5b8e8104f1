package authn

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/winkk/passport/store"
)

// NameID formats an application may issue (saml-core §8.3).
const (
	NameIDEmail       = "emailAddress"
	NameIDPersistent  = "persistent"
	NameIDTransient   = "transient"
	NameIDUnspecified = "unspecified"
)

// Attribute profiles.
const (
	ProfileDefault   = "default"
	ProfileAtlassian = "atlassian"
)

// App is a registered application (a SAML Service Provider).
type App struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	URL                   string   `json:"url"`
	Interface             string   `json:"interface"`
	AuthType              string   `json:"auth_type"`
	Audience              string   `json:"audience"`
	ACSURL                string   `json:"acs_url"`
	NameIDFormat          string   `json:"nameid_format"`
	AttributeProfile      string   `json:"attribute_profile"`
	SPCertificates        []string `json:"sp_certificates"`
	RequireSignedRequests bool     `json:"require_signed_requests"`
	RelayStates           []string `json:"relay_states"`
	SLOURL                string   `json:"slo_url"`
	// ACSURLs are further ACS endpoints (HTTP-POST) an AuthnRequest may name by URL or by index.
	ACSURLs []ACSEndpoint `json:"acs_urls"`
	// EncryptionCertificate is the SP's encryption certificate; with EncryptAssertions the assertion is
	// encrypted to it.
	EncryptionCertificate string `json:"encryption_certificate"`
	EncryptAssertions     bool   `json:"encrypt_assertions"`
	// AllowSHA1 accepts SHA-1 signatures on this SP's requests (legacy SPs only).
	AllowSHA1 bool `json:"allow_sha1"`
	// AttributeMap renames user fields in the assertion (field → attribute name), over the profile's
	// names; a field mapped to "" is not sent. Fields: email, given_name, family_name, display_name, groups.
	AttributeMap map[string]string `json:"attribute_map"`
	// Sign is what the Response signs: SignBoth (the default), SignAssertion or SignResponse.
	Sign string `json:"sign"`
	// AllowedGroups, when not empty, lets only users in at least one of these groups use the application.
	AllowedGroups []string  `json:"allowed_groups"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// ACSEndpoint is an indexed Assertion Consumer Service (saml-metadata §2.2.3).
type ACSEndpoint struct {
	URL   string `json:"url"`
	Index int    `json:"index"`
}

// ResolveACS picks the ACS URL for a request: the one it names (which must be registered), the one at its
// index, or the app's default. ok is false when the request names something not registered.
func (a App) ResolveACS(requested string, index *int) (string, bool) {
	switch {
	case requested != "":
		if requested == a.ACSURL {
			return requested, true
		}
		for _, e := range a.ACSURLs {
			if e.URL == requested {
				return requested, true
			}
		}
		return "", false
	case index != nil:
		for _, e := range a.ACSURLs {
			if e.Index == *index {
				return e.URL, true
			}
		}
		return "", false
	}
	return a.ACSURL, true
}

// ACSList is every registered ACS URL.
func (a App) ACSList() []string {
	out := []string{}
	for _, e := range a.ACSURLs {
		out = append(out, e.URL)
	}
	return out
}

// Configured reports whether the app can receive Responses: both its audience and ACS URL are set.
func (a App) Configured() bool { return a.Audience != "" && a.ACSURL != "" }

// AppPatch holds the fields of an application to create or change; nil means "leave as is".
type AppPatch struct {
	Name                  *string            `json:"name"`
	URL                   *string            `json:"url"`
	Interface             *string            `json:"interface"`
	AuthType              *string            `json:"auth_type"`
	Audience              *string            `json:"audience"`
	ACSURL                *string            `json:"acs_url"`
	NameIDFormat          *string            `json:"nameid_format"`
	AttributeProfile      *string            `json:"attribute_profile"`
	SPCertificates        *[]string          `json:"sp_certificates"`
	RequireSignedRequests *bool              `json:"require_signed_requests"`
	RelayStates           *[]string          `json:"relay_states"`
	SLOURL                *string            `json:"slo_url"`
	ACSURLs               *[]ACSEndpoint     `json:"acs_urls"`
	EncryptionCertificate *string            `json:"encryption_certificate"`
	EncryptAssertions     *bool              `json:"encrypt_assertions"`
	AllowSHA1             *bool              `json:"allow_sha1"`
	AttributeMap          *map[string]string `json:"attribute_map"`
	Sign                  *string            `json:"sign"`
	AllowedGroups         *[]string          `json:"allowed_groups"`
}

const (
	maxNameLen = 200
	maxURLLen  = 2048
)

// What an application's Responses sign (App.Sign).
const (
	SignBoth      = "both"      // the Response and the Assertion (the default)
	SignAssertion = "assertion" // the Assertion only: one signature
	SignResponse  = "response"  // the Response only: one signature
)

// Allowed reports whether user u may use the application: every active user when AllowedGroups is empty,
// else a user in at least one of them.
func (a App) Allowed(u User) bool {
	if len(a.AllowedGroups) == 0 {
		return true
	}
	for _, g := range u.Groups {
		if slices.Contains(a.AllowedGroups, g) {
			return true
		}
	}
	return false
}

func (p AppPatch) apply(a App) (App, error) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	set(&a.Name, p.Name)
	set(&a.URL, p.URL)
	set(&a.Interface, p.Interface)
	set(&a.AuthType, p.AuthType)
	set(&a.Audience, p.Audience)
	set(&a.ACSURL, p.ACSURL)
	set(&a.NameIDFormat, p.NameIDFormat)
	set(&a.AttributeProfile, p.AttributeProfile)
	set(&a.SLOURL, p.SLOURL)
	set(&a.Sign, p.Sign)
	if p.AllowedGroups != nil {
		a.AllowedGroups = trimAll(*p.AllowedGroups)
	}
	if p.SPCertificates != nil {
		a.SPCertificates = append([]string(nil), (*p.SPCertificates)...)
	}
	if p.RelayStates != nil {
		a.RelayStates = append([]string(nil), (*p.RelayStates)...)
	}
	if p.RequireSignedRequests != nil {
		a.RequireSignedRequests = *p.RequireSignedRequests
	}
	if p.ACSURLs != nil {
		a.ACSURLs = append([]ACSEndpoint(nil), (*p.ACSURLs)...)
	}
	set(&a.EncryptionCertificate, p.EncryptionCertificate)
	if p.EncryptAssertions != nil {
		a.EncryptAssertions = *p.EncryptAssertions
	}
	if p.AllowSHA1 != nil {
		a.AllowSHA1 = *p.AllowSHA1
	}
	if p.AttributeMap != nil {
		a.AttributeMap = map[string]string{}
		for k, v := range *p.AttributeMap {
			a.AttributeMap[k] = strings.TrimSpace(v)
		}
	}
	if a.AttributeMap == nil {
		a.AttributeMap = map[string]string{}
	}
	if a.ACSURLs == nil {
		a.ACSURLs = []ACSEndpoint{}
	}
	if a.Interface == "" {
		a.Interface = "saml2"
	}
	if a.NameIDFormat == "" {
		a.NameIDFormat = NameIDEmail
	}
	if a.AttributeProfile == "" {
		a.AttributeProfile = ProfileDefault
	}
	if a.SPCertificates == nil {
		a.SPCertificates = []string{}
	}
	if a.RelayStates == nil {
		a.RelayStates = []string{}
	}
	if a.Sign == "" {
		a.Sign = SignBoth
	}
	if a.AllowedGroups == nil {
		a.AllowedGroups = []string{}
	}
	return a, a.validate()
}

// validate checks every field of a and returns all their problems at once (an *Error with Fields).
func (a App) validate() error {
	var v fieldCheck
	v.text("name", a.Name, maxNameLen, true)
	if a.Interface != "saml2" {
		v.add("interface", "interface %q is not supported: use \"saml2\"", a.Interface)
	}
	v.text("auth_type", a.AuthType, maxNameLen, false)
	v.text("audience", a.Audience, maxURLLen, false)
	v.url("url", a.URL, false)
	v.url("acs_url", a.ACSURL, true)
	v.url("slo_url", a.SLOURL, true)
	v.oneOf("nameid_format", a.NameIDFormat, "nameid_format must be one of emailAddress, persistent, transient, unspecified",
		NameIDEmail, NameIDPersistent, NameIDTransient, NameIDUnspecified)
	v.oneOf("attribute_profile", a.AttributeProfile, "attribute_profile must be \"default\" or \"atlassian\"", ProfileDefault, ProfileAtlassian)
	v.oneOf("sign", a.Sign, "sign must be \"both\", \"assertion\" or \"response\"", SignBoth, SignAssertion, SignResponse)
	a.validateCertificates(&v)
	a.validateACSURLs(&v)
	a.validateAttributeMap(&v)
	a.validateRelayStates(&v)
	validateGroups(&v, "allowed_groups", a.AllowedGroups)
	return invalidFields(v.errs)
}

func (a App) validateCertificates(v *fieldCheck) {
	if len(a.SPCertificates) > 10 {
		v.add("sp_certificates", "at most 10 sp_certificates")
	}
	for i, c := range a.SPCertificates {
		if _, err := ParseCertificatePEM(c); err != nil {
			v.add(fmt.Sprintf("sp_certificates[%d]", i), "sp_certificates[%d] is not a PEM X.509 certificate", i)
		}
	}
	if a.EncryptionCertificate != "" {
		if _, err := ParseCertificatePEM(a.EncryptionCertificate); err != nil {
			v.add("encryption_certificate", "encryption_certificate is not a PEM X.509 certificate")
		}
	}
	if a.EncryptAssertions && a.EncryptionCertificate == "" {
		v.add("encrypt_assertions", "encrypt_assertions needs an encryption_certificate")
	}
}

func (a App) validateACSURLs(v *fieldCheck) {
	if len(a.ACSURLs) > 20 {
		v.add("acs_urls", "at most 20 acs_urls")
	}
	seen := map[int]bool{}
	for i, e := range a.ACSURLs {
		v.url(fmt.Sprintf("acs_urls[%d].url", i), e.URL, true)
		if e.URL == "" {
			v.add(fmt.Sprintf("acs_urls[%d].url", i), "acs_urls[%d].url is required", i)
		}
		if e.Index < 0 || seen[e.Index] {
			v.add(fmt.Sprintf("acs_urls[%d].index", i), "acs_urls[%d].index must be a unique number of 0 or more", i)
		}
		seen[e.Index] = true
	}
}

func (a App) validateAttributeMap(v *fieldCheck) {
	for _, field := range slices.Sorted(maps.Keys(a.AttributeMap)) {
		name, f := a.AttributeMap[field], "attribute_map."+field
		switch {
		case !slices.Contains(UserFields, field):
			v.add(f, "attribute_map: %q is not a user field (%s)", field, strings.Join(UserFields, ", "))
		case len(name) > maxURLLen:
			v.add(f, "attribute_map: the name for %s is too long", field)
		case !plainText(name):
			v.add(f, "attribute_map: the name for %s holds characters that are not allowed (control characters, U+FFFE, U+FFFF or invalid UTF-8)", field)
		}
	}
}

func (a App) validateRelayStates(v *fieldCheck) {
	if len(a.RelayStates) > 50 {
		v.add("relay_states", "at most 50 relay_states")
	}
	for i, r := range a.RelayStates {
		if err := checkRelayStatePattern(r); err != nil {
			v.add(fmt.Sprintf("relay_states[%d]", i), "relay_states[%d]: %s", i, err.(*Error).Message)
		}
	}
}

// fieldCheck collects the problems of a record's fields.
type fieldCheck struct{ errs []FieldError }

func (v *fieldCheck) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// text checks a free-text field: present when required, at most max bytes, plain text.
func (v *fieldCheck) text(field, s string, max int, required bool) {
	switch {
	case required && s == "":
		v.add(field, "%s is required", field)
	case len(s) > max:
		v.add(field, "%s is longer than %d characters", field, max)
	case !plainText(s):
		v.add(field, "%s holds characters that are not allowed (control characters, U+FFFE, U+FFFF or invalid UTF-8)", field)
	}
}

// url checks an optional URL field (see checkURL).
func (v *fieldCheck) url(field, raw string, endpoint bool) {
	if raw == "" {
		return
	}
	if err := checkURL(field, raw, endpoint); err != nil {
		v.add(field, "%s", err.(*Error).Message)
	}
}

// oneOf checks that s is one of allowed.
func (v *fieldCheck) oneOf(field, s, message string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.add(field, "%s", message)
	}
}

// The user fields an application can receive as attributes (User's JSON names).
const (
	FieldEmail       = "email"
	FieldGivenName   = "given_name"
	FieldFamilyName  = "family_name"
	FieldDisplayName = "display_name"
	FieldGroups      = "groups"
)

// UserFields lists the user fields an application can receive as attributes, in the order they are sent.
var UserFields = []string{FieldEmail, FieldGivenName, FieldFamilyName, FieldDisplayName, FieldGroups}

// ParseCertificatePEM parses one PEM-encoded X.509 certificate.
func ParseCertificatePEM(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(s)))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// IsLoopbackHost reports whether host (without port) is 127.0.0.1, ::1 or localhost.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURL accepts absolute http(s) URLs; when endpoint is set (a URL we send users or messages to) it must be
// https except on loopback hosts, and carry no fragment or credentials.
func checkURL(field, raw string, endpoint bool) error {
	if len(raw) > maxURLLen {
		return newErr(ErrInvalid, "%s is longer than %d characters", field, maxURLLen)
	}
	if err := checkText(field, raw); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return newErr(ErrInvalid, "%s must be an absolute https URL", field)
	}
	if u.User != nil {
		return newErr(ErrInvalid, "%s must not carry credentials", field)
	}
	if endpoint {
		if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
			return newErr(ErrInvalid, "%s must use https (http is allowed only on 127.0.0.1, [::1] and localhost)", field)
		}
		if u.Fragment != "" || strings.Contains(raw, "#") {
			return newErr(ErrInvalid, "%s must not have a fragment", field)
		}
	}
	return nil
}

// Create registers an application from p. Audience and ACS URL may be left empty and set later.
func (s *Apps) Create(ctx context.Context, p AppPatch) (App, error) {
	now := s.now()
	a, err := p.apply(App{CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return App{}, err
	}
	a.ID = s.randomID(10)
	if err := s.claimAudience(ctx, a.Audience, a.ID); err != nil {
		return App{}, err
	}
	if err := s.apps.Create(ctx, a.ID, a, 0); err != nil {
		s.releaseAudience(ctx, a.Audience, a.ID)
		return App{}, internal("create app", err)
	}
	return a, nil
}

func (s *core) claimAudience(ctx context.Context, aud, appID string) error {
	if aud == "" {
		return nil
	}
	ok, err := s.st.SetIfAbsent(ctx, audienceKey(aud), appID, 0)
	if err != nil {
		return internal("claim audience", err)
	}
	if ok {
		return nil
	}
	owner, err := s.st.GetValue(ctx, audienceKey(aud))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return internal("claim audience", err)
	}
	if owner == appID {
		return nil
	}
	return newErr(ErrConflict, "audience %q is already used by another application", aud)
}

func (s *core) releaseAudience(ctx context.Context, aud, appID string) {
	if aud == "" {
		return
	}
	if _, err := s.st.DeleteValueIf(ctx, audienceKey(aud), appID); err != nil {
		s.log.Warn("release audience", "app", appID, "err", err)
	}
}

// Get returns the application with id, or an error matching ErrNotFound.
//
// Applications are read on every step of every login but change rarely, so a read is kept in memory for
// AppCacheTTL: a change made through this Service is seen at once, one made by another replica within
// AppCacheTTL.
func (s *Apps) Get(ctx context.Context, id string) (App, error) {
	if !plausibleID(id) {
		return App{}, newErr(ErrNotFound, "application not found")
	}
	if c, ok := s.appCache.Load(id); ok {
		if c := c.(cachedApp); s.now().Before(c.until) {
			return c.app, nil
		}
	}
	a, err := s.apps.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.appCache.Delete(id)
		return App{}, newErr(ErrNotFound, "application not found")
	}
	if err != nil {
		return App{}, internal("get app", err)
	}
	s.appCache.Store(id, cachedApp{app: a, until: s.now().Add(AppCacheTTL)})
	return a, nil
}

// AppCacheTTL is how long a read application is reused before it is read again.
const AppCacheTTL = 2 * time.Second

type cachedApp struct {
	app   App
	until time.Time
}

// List returns every application, oldest first.
func (s *Apps) List(ctx context.Context) ([]App, error) {
	apps, err := s.apps.List(ctx)
	if err != nil {
		return nil, internal("list apps", err)
	}
	sortBy(apps, func(a App) string { return a.CreatedAt.Format(time.RFC3339Nano) + a.ID })
	return apps, nil
}

// Update applies p to the application id atomically. A changed audience must stay unique across apps.
func (s *Apps) Update(ctx context.Context, id string, p AppPatch) (App, error) {
	old, err := s.svc.Apps.Get(ctx, id)
	if err != nil {
		return App{}, err
	}
	if _, err := p.apply(old); err != nil {
		return App{}, err
	}
	if p.Audience != nil {
		if err := s.claimAudience(ctx, strings.TrimSpace(*p.Audience), id); err != nil {
			return App{}, err
		}
	}
	var prevAudience string
	defer s.appCache.Delete(id)
	a, err := s.apps.Update(ctx, id, func(cur App) (App, error) {
		prevAudience = cur.Audience
		next, err := p.apply(cur)
		next.UpdatedAt = s.now()
		return next, err
	})
	if err != nil {
		if p.Audience != nil && strings.TrimSpace(*p.Audience) != old.Audience {
			s.releaseAudience(ctx, strings.TrimSpace(*p.Audience), id)
		}
		if errors.Is(err, store.ErrNotFound) {
			return App{}, newErr(ErrNotFound, "application not found")
		}
		return App{}, internal("update app", err)
	}
	if prevAudience != a.Audience {
		s.releaseAudience(ctx, prevAudience, id)
	}
	return a, nil
}

// Delete removes the application id.
func (s *Apps) Delete(ctx context.Context, id string) error {
	defer s.appCache.Delete(id)
	a, err := s.apps.Take(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return newErr(ErrNotFound, "application not found")
	}
	if err != nil {
		return internal("delete app", err)
	}
	s.releaseAudience(ctx, a.Audience, id)
	return nil
}

// AppWarnings lists what looks wrong with an app without being refused: for the Atlassian profile, an audience
// or ACS URL that does not have Atlassian's shape.
func AppWarnings(a App) []string {
	var w []string
	if !a.Configured() {
		w = append(w, "audience and acs_url must both be set before users can sign in")
	}
	if a.AttributeProfile == ProfileAtlassian {
		if a.Audience != "" && !strings.HasPrefix(a.Audience, "https://auth.atlassian.com/saml/") {
			w = append(w, "audience does not look like Atlassian's SP Entity ID (https://auth.atlassian.com/saml/...)")
		}
		if a.ACSURL != "" && !strings.HasPrefix(a.ACSURL, "https://auth.atlassian.com/login/callback?connection=saml-") {
			w = append(w, "acs_url does not look like Atlassian's ACS URL (https://auth.atlassian.com/login/callback?connection=saml-...)")
		}
	}
	return w
}
