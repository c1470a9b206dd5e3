package metrics_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/tlsauto"
)

// A Manager's metrics on /metrics, in a registry of their own.
func ExampleNew() {
	m, err := tlsauto.NewFromEnv("example.com")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(m))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}
