package rfc2136_test

import (
	"fmt"

	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
)

func ExampleNew() {
	p, err := rfc2136.New(rfc2136.Config{
		Nameserver:    "192.0.2.53:53", // the zone's primary
		TSIGKey:       "certfleet",
		TSIGSecret:    "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=", // as tsig-keygen prints it
		TSIGAlgorithm: "hmac-sha256",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p)
	// Output: rfc2136.Provider{rfc2136.Config{Nameserver: "192.0.2.53:53", TSIGKey: "certfleet", TSIGSecret: [redacted], TSIGAlgorithm: "hmac-sha256", Timeout: 10s}}
}

func ExampleNew_missingPort() {
	_, err := rfc2136.New(rfc2136.Config{Nameserver: "ns1.example.com"})
	fmt.Println(err)
	// Output: Nameserver: "ns1.example.com" is not host:port (the port is required, such as 192.0.2.53:53 or [2001:db8::53]:53)
}
