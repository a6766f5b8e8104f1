package authn

import (
	"net/url"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

func sortBy[T any](xs []T, key func(T) string) {
	sort.Slice(xs, func(i, j int) bool { return key(xs[i]) < key(xs[j]) })
}

// plainText reports whether s is text fit to show and to put in a signed XML document: valid UTF-8 without
// control characters or the non-characters U+FFFE and U+FFFF (which XML 1.0 forbids).
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// checkText refuses a value of field that is not plainText.
func checkText(field, v string) error {
	if !plainText(v) {
		return newErr(ErrInvalid, "%s holds characters that are not allowed (control characters, U+FFFE, U+FFFF or invalid UTF-8)", field)
	}
	return nil
}

// checkRelayStatePattern validates an allowed-RelayState entry: an absolute http(s) URL whose host may start
// with "*." (one or more leftmost labels).
func checkRelayStatePattern(p string) error {
	if len(p) > maxURLLen {
		return newErr(ErrInvalid, "longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(strings.Replace(p, "*.", "wildcard.", 1))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return newErr(ErrInvalid, "%q is not an absolute http(s) URL", p)
	}
	if strings.Contains(p, "*") && !strings.HasPrefix(u.Host, "wildcard.") {
		return newErr(ErrInvalid, "%q: \"*.\" may only stand for the leftmost host labels", p)
	}
	if strings.Count(p, "*") > 1 {
		return newErr(ErrInvalid, "%q: only one \"*.\" is allowed", p)
	}
	if path, ok := followedPath(u); !ok || path != u.Path {
		return newErr(ErrInvalid, "%q: the path must not hold dot segments (\"..\", \"%%2e\"), encoded slashes or backslashes", p)
	}
	return nil
}

// RelayStateAllowed reports whether rs may be used with IdP-initiated login for an app whose allowed list is
// patterns: an empty rs is always allowed; otherwise rs must equal an entry or extend it by a path, where "*."
// in an entry's host stands for one or more leftmost host labels.
func RelayStateAllowed(rs string, patterns []string) bool {
	if rs == "" {
		return true
	}
	u, err := url.Parse(rs)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return false
	}
	for _, p := range patterns {
		if relayStateMatches(u, p) {
			return true
		}
	}
	return false
}

func relayStateMatches(u *url.URL, pattern string) bool {
	wild := strings.Contains(pattern, "://*.")
	pu, err := url.Parse(strings.Replace(pattern, "://*.", "://", 1))
	if err != nil {
		return false
	}
	if !strings.EqualFold(u.Scheme, pu.Scheme) || u.Port() != pu.Port() {
		return false
	}
	host, phost := strings.ToLower(u.Hostname()), strings.ToLower(pu.Hostname())
	if wild {
		if !strings.HasSuffix(host, "."+phost) || len(host) <= len(phost)+1 {
			return false
		}
	} else if host != phost {
		return false
	}
	if pu.RawQuery != "" && u.RawQuery != pu.RawQuery {
		return false
	}
	path, ok := followedPath(u)
	ppath, pok := followedPath(pu)
	if !ok || !pok {
		return false
	}
	ppath = strings.TrimSuffix(ppath, "/")
	if ppath == "" {
		return true
	}
	return path == ppath || strings.HasPrefix(path, ppath+"/")
}

// followedPath is the path of u as a browser sent there follows it: percent-decoded, with its dot segments
// removed (RFC 3986 §5.2.4; browsers take "%2e" for "." as well, WHATWG URL §4.4 "path state"), so
// "/app/../x" and "/app/%2e%2e/x" are both "/x". ok is false when the path is ambiguous: an encoded slash,
// a backslash (browsers read it as a slash) or a dot or slash encoded twice ("%252e": a server that decodes
// twice would see another path). Such a path is refused rather than guessed at.
func followedPath(u *url.URL) (path string, ok bool) {
	raw, decoded := strings.ToLower(u.EscapedPath()), strings.ToLower(u.Path)
	for _, bad := range []string{"%2f", "%5c", `\`} {
		if strings.Contains(raw, bad) || strings.Contains(decoded, bad) {
			return "", false
		}
	}
	if strings.Contains(decoded, "%2e") {
		return "", false
	}
	return removeDotSegments(u.Path), true
}

// removeDotSegments resolves the "." and ".." segments of an absolute path (RFC 3986 §5.2.4): ".." removes the
// segment before it and never climbs above the root; a path ending in either keeps its trailing slash.
func removeDotSegments(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
			continue
		}
		if last {
			out = append(out, "")
		}
	}
	return strings.Join(out, "/")
}
