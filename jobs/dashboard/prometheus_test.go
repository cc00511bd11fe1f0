package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAsynqmonChartsAskPrometheus: with PrometheusURL, asynqmon's metrics
// API (its queue charts) queries that Prometheus; without, it cannot.
func TestAsynqmonChartsAskPrometheus(t *testing.T) {
	var queries atomic.Int32
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/query_range") && strings.Contains(r.URL.Query().Get("query"), "asynq_") {
			queries.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	}))
	defer prom.Close()
	f := newFixture(t, func(c *Config) { c.PrometheusURL = prom.URL })
	res, body := f.do(t, "GET", "/asynq/api/metrics?duration_sec=3600", "bearer", nil)
	if res.StatusCode != http.StatusOK || queries.Load() == 0 {
		t.Errorf("asynqmon metrics: %d %q, %d queries reached Prometheus", res.StatusCode, body, queries.Load())
	}
	res, _ = f.do(t, "GET", "/asynq/", "bearer", nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("asynqmon page: %d", res.StatusCode)
	}
}
