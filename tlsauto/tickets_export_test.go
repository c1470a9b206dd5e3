package tlsauto

import (
	"context"
	"time"

	"github.com/caddyserver/certmagic"
)

// TicketKeyIDs returns, newest first, when each session ticket key m has
// installed was made: enough to tell keys apart in tests.
func TicketKeyIDs(m *Manager) []time.Time {
	if m.tickets == nil {
		return nil
	}
	var ids []time.Time
	for _, k := range m.tickets.current() {
		ids = append(ids, k.created)
	}
	return ids
}

// StoredTicketKeys returns the session ticket keys stored in s, newest
// first, as raw keys and when each was made.
func StoredTicketKeys(ctx context.Context, s certmagic.Storage) ([][32]byte, []time.Time, error) {
	b, err := s.Load(ctx, ticketKeysKey)
	if err != nil {
		return nil, nil, err
	}
	keys, err := decodeTicketKeys(b)
	if err != nil {
		return nil, nil, err
	}
	var raw [][32]byte
	var made []time.Time
	for _, k := range keys {
		raw = append(raw, k.key)
		made = append(made, k.created)
	}
	return raw, made, nil
}
