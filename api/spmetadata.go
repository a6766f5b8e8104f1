package api

import (
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/sso"
)

// handleImportMetadata fills an app from its SP's metadata (see sso.IdP.ImportSPMetadata).
func (s *Server) handleImportMetadata(c echo.Context) error {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	switch mt {
	case "application/samlmetadata+xml", "text/xml", "application/xml":
	default:
		return errUnsupportedMediaType.WithMessage("Send the SP's metadata XML (Content-Type: application/samlmetadata+xml or text/xml).")
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, sso.MaxSPMetadataSize+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge.WithMessage("The metadata is too large.")
		}
		return authn.ErrInvalid.WithMessage("The metadata could not be read.")
	}
	a, entityID, err := s.idp.ImportSPMetadata(s.ctx(c), c.Param("id"), body)
	if err != nil {
		return err
	}
	s.log.Info("application filled from SP metadata", "app", a.ID, "entity_id", entityID)
	return c.JSON(http.StatusOK, s.viewApp(a))
}
