// Package metrics exports a tlsauto.Manager's status and counters to
// Prometheus. It is the only certfleet package that links
// github.com/prometheus/client_golang: programs that do not import it do
// not pay for it.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.New(m))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Each scrape reads one snapshot of the Manager (Status and Stats); nothing
// is counted twice and the handshake path is untouched. The metrics:
//
//	certfleet_certificate_not_after_timestamp_seconds{name}  gauge: expiry of the served certificate
//	certfleet_certificate_renewal_timestamp_seconds{name}    gauge: scheduled renewal
//	certfleet_certificate_ready{name}                        gauge: 1 when served and healthy (as HealthHandler)
//	certfleet_obtain_total{renewal,result}                   counter
//	certfleet_obtain_duration_seconds                        histogram
//	certfleet_dns_requests_total{provider,operation,result}  counter
//	certfleet_dns_propagation_seconds                        histogram: record written → served by every checked server
//	certfleet_acme_requests_total{endpoint,status}           counter
//	certfleet_storage_operations_total{operation,result}     counter
//	certfleet_lock_wait_seconds                              histogram
//	certfleet_sync_lag_seconds                               histogram: stored by one member → served by this one
//	certfleet_handshakes_total{result}                       counter: served, unknown_name, no_sni
//
// No label holds a secret, a serial number or an unbounded value other
// than the managed names.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certfleet/certfleet/tlsauto"
)

var (
	notAfterDesc = prometheus.NewDesc("certfleet_certificate_not_after_timestamp_seconds",
		"Expiry (NotAfter) of the certificate served for a managed name, in Unix seconds.", []string{"name"}, nil)
	renewalDesc = prometheus.NewDesc("certfleet_certificate_renewal_timestamp_seconds",
		"When the certificate served for a managed name is scheduled for renewal, in Unix seconds.", []string{"name"}, nil)
	readyDesc = prometheus.NewDesc("certfleet_certificate_ready",
		"1 when a managed name is served by a certificate with enough lifetime left (as the health handler decides), else 0.", []string{"name"}, nil)
	obtainDesc = prometheus.NewDesc("certfleet_obtain_total",
		"Attempts to obtain or renew a certificate, by kind and result.", []string{"renewal", "result"}, nil)
	obtainDurDesc = prometheus.NewDesc("certfleet_obtain_duration_seconds",
		"Time taken by attempts to obtain or renew a certificate.", nil, nil)
	dnsDesc = prometheus.NewDesc("certfleet_dns_requests_total",
		"Calls to the DNS provider, by provider, operation and result.", []string{"provider", "operation", "result"}, nil)
	propagationDesc = prometheus.NewDesc("certfleet_dns_propagation_seconds",
		"Time from writing a challenge record to every checked DNS server serving it.", nil, nil)
	acmeDesc = prometheus.NewDesc("certfleet_acme_requests_total",
		"Requests to the ACME server, by endpoint and HTTP status.", []string{"endpoint", "status"}, nil)
	storageDesc = prometheus.NewDesc("certfleet_storage_operations_total",
		"Operations on the storage, by operation and result.", []string{"operation", "result"}, nil)
	lockWaitDesc = prometheus.NewDesc("certfleet_lock_wait_seconds",
		"Time spent waiting for storage locks.", nil, nil)
	syncLagDesc = prometheus.NewDesc("certfleet_sync_lag_seconds",
		"Time from a certificate being stored by one member of the fleet to being served by this one.", nil, nil)
	handshakeDesc = prometheus.NewDesc("certfleet_handshakes_total",
		"TLS handshakes asking for a certificate, by result.", []string{"result"}, nil)
)

// collector is the prometheus.Collector of one Manager.
type collector struct {
	m *tlsauto.Manager
}

// New returns a Collector of m's metrics (see the package documentation);
// register it with a prometheus.Registry. m must not be nil.
func New(m *tlsauto.Manager) prometheus.Collector {
	return collector{m: m}
}

// Describe sends the descriptions of every metric.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		notAfterDesc, renewalDesc, readyDesc, obtainDesc, obtainDurDesc, dnsDesc, propagationDesc,
		acmeDesc, storageDesc, lockWaitDesc, syncLagDesc, handshakeDesc,
	} {
		ch <- d
	}
}

// Collect reads one snapshot of the Manager and sends every metric.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.Status()
	for _, n := range st.Names {
		ready := 0.0
		if cert := n.Certificate; cert != nil {
			ch <- prometheus.MustNewConstMetric(notAfterDesc, prometheus.GaugeValue, unix(cert.NotAfter), n.Name)
			if healthy(cert, st.MinLeft, st.Checked) {
				ready = 1
			}
		}
		if !n.RenewAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(renewalDesc, prometheus.GaugeValue, unix(n.RenewAt), n.Name)
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready, n.Name)
	}

	s := c.m.Stats()
	for _, o := range s.Obtains {
		ch <- prometheus.MustNewConstMetric(obtainDesc, prometheus.CounterValue, float64(o.Count), strconv.FormatBool(o.Renewal), o.Result)
	}
	for _, d := range s.DNSRequests {
		ch <- prometheus.MustNewConstMetric(dnsDesc, prometheus.CounterValue, float64(d.Count), d.Provider, d.Operation, d.Result)
	}
	for _, a := range s.ACMERequests {
		ch <- prometheus.MustNewConstMetric(acmeDesc, prometheus.CounterValue, float64(a.Count), a.Endpoint, a.Status)
	}
	for _, o := range s.StorageOps {
		ch <- prometheus.MustNewConstMetric(storageDesc, prometheus.CounterValue, float64(o.Count), o.Operation, o.Result)
	}
	ch <- prometheus.MustNewConstMetric(handshakeDesc, prometheus.CounterValue, float64(s.Handshakes.Served), "served")
	ch <- prometheus.MustNewConstMetric(handshakeDesc, prometheus.CounterValue, float64(s.Handshakes.UnknownName), "unknown_name")
	ch <- prometheus.MustNewConstMetric(handshakeDesc, prometheus.CounterValue, float64(s.Handshakes.NoSNI), "no_sni")
	for _, h := range []struct {
		desc *prometheus.Desc
		h    tlsauto.Histogram
	}{
		{obtainDurDesc, s.ObtainDuration}, {propagationDesc, s.Propagation}, {lockWaitDesc, s.LockWait}, {syncLagDesc, s.SyncLag},
	} {
		buckets := make(map[float64]uint64, len(h.h.Buckets))
		for _, b := range h.h.Buckets {
			buckets[b.UpperBound] = b.Count
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, h.h.Count, h.h.Sum, buckets)
	}
}

// healthy applies the health handler's rule to a served certificate: not
// expired, and at least minLeft of its lifetime left at now.
func healthy(cert *tlsauto.CertificateInfo, minLeft float64, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	left := cert.NotAfter.Sub(now)
	return left > 0 && life > 0 && float64(left)/float64(life) >= minLeft
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
