package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The pages' scripts and stylesheet are static files, embedded in the binary and served at /static/{name}.
// Pages link each file under a name that holds a hash of its content (login.0123456789ab.js), which may be
// cached for a year: a new version has a new name. The plain name is served too, revalidated by its ETag.

//go:embed static
var staticFS embed.FS

// staticTypes are the content types of the static files, by extension; a file of another kind is not served.
var staticTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
}

// asset is one static file.
type asset struct {
	body        []byte
	contentType string
	etag        string
	hashedName  string // the name pages link: name.<hash>.ext
}

// assets are the static files by the names they are served under: each under its plain name and its hashed one.
var assets = loadAssets(staticFS, "static")

func loadAssets(fsys fs.FS, dir string) map[string]*asset {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("api: static files: %v", err))
	}
	out := map[string]*asset{}
	for _, e := range entries {
		name := e.Name()
		ext := path.Ext(name)
		ctype, ok := staticTypes[ext]
		if !ok || e.IsDir() {
			panic(fmt.Sprintf("api: static/%s: not a file of a kind we serve (%v)", name, slices.Sorted(maps.Keys(staticTypes))))
		}
		body, err := fs.ReadFile(fsys, dir+"/"+name)
		if err != nil {
			panic(fmt.Sprintf("api: static file %s: %v", name, err))
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:6])
		a := &asset{
			body:        body,
			contentType: ctype,
			etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
			hashedName:  strings.TrimSuffix(name, ext) + "." + hash + ext,
		}
		out[name], out[a.hashedName] = a, a
	}
	return out
}

// staticURL is the URL pages link the static file name by (the template function "static").
func staticURL(name string) (string, error) {
	a, ok := assets[name]
	if !ok || a.hashedName == name {
		return "", fmt.Errorf("api: no static file %q", name)
	}
	return "/static/" + a.hashedName, nil
}

// handleStatic serves a static file (GET and HEAD): under its hashed name for a year (immutable), under its
// plain name revalidated by ETag. Either answers If-None-Match with 304. No cookie is needed or set.
func (s *Server) handleStatic(c echo.Context) error {
	name := c.Param("name")
	a, ok := assets[name]
	if !ok {
		return errNoRoute
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, a.contentType)
	h.Set("ETag", a.etag)
	if name == a.hashedName {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(a.body))
	return nil
}
