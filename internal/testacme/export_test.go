package testacme

import "github.com/letsencrypt/pebble/v2/acme"

// Reusable reports whether Pebble would find a valid authorization for name
// of the account that placed the world's first order, were a new order to
// arrive now.
func Reusable(w *World, name string) bool {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	if !w.reuse {
		w.retireAuthorizations()
	}
	o := w.db.GetOrderByID(w.orders[0].ID)
	o.RLock()
	account := o.AccountID
	o.RUnlock()
	return w.db.FindValidAuthorization(account, acme.Identifier{Type: acme.IdentifierDNS, Value: name}) != nil
}
