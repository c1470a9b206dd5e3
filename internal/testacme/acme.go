package testacme

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path"
)

// newOrderPath is where Pebble's WFE takes new orders (unexported there).
const newOrderPath = "/order-plz"

// serveACME passes requests to Pebble's WFE one at a time, and counts the
// orders and authorizations it creates.
func (w *World) serveACME(rw http.ResponseWriter, r *http.Request) {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != newOrderPath {
		w.wfe.ServeHTTP(rw, r)
		return
	}
	rec := &recorder{ResponseWriter: rw, status: http.StatusOK}
	w.wfe.ServeHTTP(rec, r)
	if rec.status != http.StatusCreated {
		return
	}
	var order struct {
		Authorizations []string `json:"authorizations"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &order); err != nil {
		return // the client sees the same malformed reply; nothing to count
	}
	w.orderIDs = append(w.orderIDs, path.Base(rec.Header().Get("Location")))
	for _, u := range order.Authorizations {
		w.authzIDs[path.Base(u)] = struct{}{}
	}
}

// recorder passes a response through and keeps a copy of its status and
// body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}
