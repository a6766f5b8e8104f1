package api

import (
	"encoding/pem"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

var shortNameIDFormats = map[string]string{
	saml.NameIDFormatEmailAddress: authn.NameIDEmail,
	saml.NameIDFormatPersistent:   authn.NameIDPersistent,
	saml.NameIDFormatTransient:    authn.NameIDTransient,
	saml.NameIDFormatUnspecified:  authn.NameIDUnspecified,
}

// handleImportMetadata fills an app from its SP's metadata: audience, ACS URLs with their indexes, signing
// and encryption certificates, SLO URL and NameID format.
func (s *Server) handleImportMetadata(c echo.Context) error {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	switch mt {
	case "application/samlmetadata+xml", "text/xml", "application/xml":
	default:
		return errUnsupportedMediaType.WithMessage("Send the SP's metadata XML (Content-Type: application/samlmetadata+xml or text/xml).")
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, saml.MaxMetadataSize+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge.WithMessage("The metadata is too large.")
		}
		return authn.ErrInvalid.WithMessage("The metadata could not be read.")
	}
	md, err := saml.ParseSPMetadata(body)
	if err != nil {
		return err
	}
	p := authn.AppPatch{Audience: &md.EntityID}
	if def, ok := md.DefaultACS(); ok {
		p.ACSURL = &def.Location
	} else {
		return errNoACS
	}
	acs := []authn.ACSEndpoint{}
	for _, e := range md.ACS {
		if e.Binding == saml.BindingPOST {
			acs = append(acs, authn.ACSEndpoint{URL: e.Location, Index: e.Index})
		}
	}
	p.ACSURLs = &acs
	certs := []string{}
	for _, c := range md.SigningCertificates {
		certs = append(certs, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	p.SPCertificates = &certs
	if len(md.EncryptionCertificates) > 0 {
		enc := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: md.EncryptionCertificates[0].Raw}))
		p.EncryptionCertificate = &enc
	}
	for _, e := range md.SLO {
		if e.Binding == saml.BindingRedirect {
			loc := e.Location
			if e.ResponseLocation != "" {
				loc = e.ResponseLocation
			}
			p.SLOURL = &loc
			break
		}
	}
	for _, f := range md.NameIDFormats {
		if short, ok := shortNameIDFormats[f]; ok {
			p.NameIDFormat = &short
			break
		}
	}
	if md.AuthnRequestsSigned {
		yes := true
		p.RequireSignedRequests = &yes
	}
	a, err := s.svc.UpdateApp(s.ctx(c), c.Param("id"), p)
	if err != nil {
		return err
	}
	s.log.Info("application filled from SP metadata", "app", a.ID, "entity_id", md.EntityID)
	return c.JSON(http.StatusOK, s.viewApp(a))
}
