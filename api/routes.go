package api

import (
	"net/http"

	"github.com/labstack/echo/v4/middleware"
)

// routes registers every route of the server. Most maintenance starts with a URL: this is the map.
func (s *Server) routes() {
	e := s.echo
	e.Use(s.recoverPanics(), s.securityHeaders, s.countRequests, s.withDeadline, s.withClient)

	// Operations.
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	e.GET("/metrics", s.handleMetrics)

	// SAML 2.0 IdP endpoints (one IdP, one signing key, many applications).
	samlLimit := middleware.BodyLimit("256K")
	e.GET("/saml/certificate.pem", s.handleCertificate)
	e.GET("/saml/:appID/metadata", s.handleMetadata)
	e.Match([]string{http.MethodGet, http.MethodPost}, "/saml/:appID/sso", s.handleSSO, samlLimit, deepStack)
	e.GET("/saml/:appID/login", s.handleIdPLogin, deepStack)
	e.Match([]string{http.MethodGet, http.MethodPost}, "/saml/:appID/slo", s.handleSLO, samlLimit)

	// The login pages the employee's browser sees.
	e.GET("/login/:txnID", s.handleLoginPage, deepStack)
	e.POST("/login/:txnID", s.handleLoginSubmit, middleware.BodyLimit("8K"), deepStack)
	e.POST("/login/:txnID/change", s.handleLoginChange, middleware.BodyLimit("8K"), deepStack)
	e.POST("/login/:txnID/code", s.handleLoginCode, middleware.BodyLimit("8K"), deepStack)
	e.GET("/login/:txnID/events", s.handleLoginEvents)
	e.GET("/enroll", s.handleEnrollPage)
	e.Match([]string{http.MethodGet, http.MethodHead}, "/static/:name", s.handleStatic) // scripts, styles: no cookie needed

	// The admin console (pages; administrators sign in with their phone): see api/console.
	s.console.Register(e.Group("/admin"))

	// Admin API.
	admin := e.Group("/api/v1/admin", s.requireAdmin, middleware.BodyLimit("1M"))
	admin.POST("/apps", s.handleCreateApp)
	admin.GET("/apps", s.handleListApps)
	admin.GET("/apps/:id", s.handleGetApp)
	admin.PATCH("/apps/:id", s.handleUpdateApp)
	admin.DELETE("/apps/:id", s.handleDeleteApp)
	admin.PUT("/apps/:id/metadata", s.handleImportMetadata)
	admin.POST("/users", s.handleCreateUser)
	admin.GET("/users", s.handleListUsers)
	admin.GET("/users/:email", s.handleGetUser)
	admin.PATCH("/users/:email", s.handleUpdateUser)
	admin.DELETE("/users/:email", s.handleDeleteUser)
	admin.DELETE("/users/:email/sessions", s.handleEndUserSessions)
	admin.GET("/users/:email/devices", s.handleListUserDevices)
	admin.DELETE("/users/:email/devices", s.handleRevokeUserDevices)
	admin.GET("/users/:email/devices/:deviceID", s.handleGetUserDevice)
	admin.DELETE("/users/:email/devices/:deviceID", s.handleRevokeUserDevice)
	admin.GET("/keys", s.handleGetKeys)
	admin.POST("/keys/next", s.handleStageKey)
	admin.POST("/keys/activate", s.handleActivateKey)
	admin.POST("/invitations", s.handleCreateInvitation)
	admin.GET("/events", s.handleListEvents)
	admin.GET("/events/export", s.handleExportEvents)
	admin.GET("/invitations/qr", s.handleInvitationQR)

	// Device API (described by api/openapi.yaml, served below).
	e.GET("/api/v1/openapi.yaml", s.handleOpenAPI)
	dev := e.Group("/api/v1/device", middleware.BodyLimit("64K"))
	dev.POST("/enroll", s.handleEnrollByInvitation)
	dev.POST("/email-codes", s.handleRequestEmailCode)
	dev.POST("/enroll/email", s.handleEnrollByEmail)
	dev.GET("/devices", s.handleListDevices, s.requireDevice)
	dev.PATCH("/devices/:deviceID", s.handleRenameDevice, s.requireDevice)
	dev.DELETE("/devices/:deviceID", s.handleRemoveDevice, s.requireDevice)
	dev.PUT("/push-token", s.handleUpdatePushToken, s.requireDevice)
	dev.GET("/challenges", s.handleListChallenges, s.requireDevice)
	dev.GET("/challenges/wait", s.handleWaitForChallenge, s.requireDevice)
	dev.POST("/challenges/approve", s.handleApproveByNumber, s.prefetchApproval, s.requireDevice)
	dev.GET("/challenges/:challengeID", s.handleGetChallenge, s.requireDevice)
	dev.POST("/challenges/:challengeID/answer", s.handleAnswerChallenge, s.requireDevice)
	dev.POST("/invitations", s.handleCreateDeviceInvitation, s.requireDevice)
}
