package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store"
)

type metrics struct {
	httpRequests   *prometheus.CounterVec
	requests       *prometheus.CounterVec
	logins         *prometheus.CounterVec
	answers        *prometheus.CounterVec
	streamsRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, st *store.Store, open *streams) *metrics {
	m := &metrics{
		httpRequests:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_http_requests_total", Help: "HTTP requests by route and status class."}, []string{"route", "code"}),
		requests:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_authn_requests_total", Help: "Accepted SAML AuthnRequests by application."}, []string{"app"}),
		logins:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_logins_total", Help: "Logins answered by outcome."}, []string{"outcome"}),
		answers:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_challenge_answers_total", Help: "Phone answers to challenges by resulting state and reason."}, []string{"state", "reason"}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_streams_refused_total", Help: "Login event streams and device long-polls refused (429) by the bound that was full: login, client, device or process."}, []string{"limit"}),
	}
	reg.MustRegister(m.httpRequests, m.requests, m.logins, m.answers, m.streamsRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "passport_streams_open", Help: "Login event streams and device long-polls open in this process."},
			func() float64 { return float64(open.count()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "passport_store_round_trips_total", Help: "Requests to the store awaited one after another (a command, or a pipeline sent at once)."},
			func() float64 { return float64(st.Stats().RoundTrips) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "passport_store_commands_total", Help: "Commands sent to the store (a script is one)."},
			func() float64 { return float64(st.Stats().Commands) }))
	return m
}

func (s *Server) countRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		code := c.Response().Status
		if err != nil {
			code = classify(err).Status
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(code/100)+"xx").Inc()
		return err
	}
}

func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 when the store answers, with details operators need (certificate expiry).
func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(s.ctx(c), 2*time.Second)
	defer cancel()
	cert := s.ring().Current.Certificate
	body := map[string]any{"certificate_not_after": cert.NotAfter.UTC()}
	if w := authn.CertificateWarning(cert, s.cfg.Clock()); w != "" {
		body["warnings"] = []string{w}
	}
	if err := s.svc.Store().Ping(ctx); err != nil {
		s.log.Warn("readiness: store does not answer", "err", err)
		body["status"] = "unavailable"
		body["store"] = "not answering"
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	body["status"] = "ok"
	body["store"] = "ok"
	return c.JSON(http.StatusOK, body)
}

func (s *Server) handleOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
