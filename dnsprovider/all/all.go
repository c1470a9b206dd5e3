// Package all links every built-in DNS provider into a program, for programs
// that let the environment choose (CERTFLEET_DNS_PROVIDER):
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/all"
//
// A program that needs one provider should import only that one: each
// brings its SDK along (route53 brings the AWS SDK).
package all

import (
	_ "github.com/certfleet/certfleet/dnsprovider/azure"          // registers "azure"
	_ "github.com/certfleet/certfleet/dnsprovider/cloudflare"     // registers "cloudflare"
	_ "github.com/certfleet/certfleet/dnsprovider/googleclouddns" // registers "googleclouddns"
	_ "github.com/certfleet/certfleet/dnsprovider/rfc2136"        // registers "rfc2136"
	_ "github.com/certfleet/certfleet/dnsprovider/route53"        // registers "route53"
)
