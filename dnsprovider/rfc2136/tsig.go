package rfc2136

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/miekg/dns"
)

// tsigKey signs requests and checks answers (a dns.TsigProvider). Unlike
// miekg/dns's own provider, its Verify reports the TSIG error a server put in
// its answer (BADKEY, BADSIG, BADTIME) instead of a bare "bad signature":
// that error is the only place where the server says why it refused the key.
type tsigKey struct {
	name      string // canonical: lower case, absolute
	algorithm string // miekg/dns's name, e.g. dns.HmacSHA256
	secret    []byte
}

// hashes are the hash functions of the algorithms the provider speaks.
var hashes = map[string]func() hash.Hash{
	dns.HmacSHA1:   sha1.New,
	dns.HmacSHA224: sha256.New224,
	dns.HmacSHA256: sha256.New,
	dns.HmacSHA384: sha512.New384,
	dns.HmacSHA512: sha512.New,
}

// Generate computes the MAC of msg.
func (k *tsigKey) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	if !strings.EqualFold(t.Hdr.Name, k.name) {
		return nil, dns.ErrSecret
	}
	newHash, ok := hashes[dns.CanonicalName(t.Algorithm)]
	if !ok {
		return nil, dns.ErrKeyAlg
	}
	h := hmac.New(newHash, k.secret)
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify checks the MAC of an answer, after checking that the server did not
// refuse the key.
func (k *tsigKey) Verify(msg []byte, t *dns.TSIG) error {
	if t.Error != dns.RcodeSuccess {
		return &refusal{tsigError: t.Error}
	}
	want, err := k.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return fmt.Errorf("the TSIG signature of the nameserver's answer does not verify: %w", dns.ErrSig)
	}
	return nil
}

// refusal is the TSIG error of an answer.
type refusal struct{ tsigError uint16 }

func (r *refusal) Error() string { return "TSIG error " + tsigErrorName(r.tsigError) }

func tsigErrorName(code uint16) string {
	if s, ok := dns.RcodeToString[int(code)]; ok {
		return s
	}
	return fmt.Sprint(code)
}

var _ dns.TsigProvider = (*tsigKey)(nil)
