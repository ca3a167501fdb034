package authv2

import (
	"strings"
	"testing"
)

// The published vectors of cms-api.md section 2.
const (
	vecAK   = "exampleAK"
	vecSK   = "exampleSK"
	vecTS   = "2024-01-02T03:04:05Z"
	vecPath = "/rest/cmsapp/v1/openapi/calldata/querybasiccallinfo"
	vecBody = `{"ccId":1,"vdn":1,"callId":"1659513159000-546750"}`
	vecHost = "10.22.26.181:28080"
)

func TestVectors(t *testing.T) {
	t.Parallel()
	headers := map[string]string{
		"host":           vecHost,
		"content-length": "50",
		"content-type":   "application/json;charset=UTF-8",
	}
	tests := []struct {
		name       string
		signed     []string
		signingKey string
		auth       string
	}{
		{
			name:       "host only",
			signed:     HeadersHostOnly,
			signingKey: "4bc0f24badfb2bacfd00ea478a8bdb79b991dff4f477db047a129965497e0125",
			auth:       "auth-v2/exampleAK/2024-01-02T03:04:05Z/host/6411875f2de0030f21fda62b8f7aade979b79a19df4273962914f2f71419e92a",
		},
		{
			name:       "content-length content-type host",
			signed:     []string{"Host", "content-type", "Content-Length"},
			signingKey: "19c1239a07315ee93360a09252a864f48bc68d68fd243554cc50cb435e334678",
			auth:       "auth-v2/exampleAK/2024-01-02T03:04:05Z/content-length;content-type;host/2b2fb3fd9a2d139e47866d78114547df7ca8cf123c0d859aa51f8a81e7fd4d97",
		},
	}
	if len(vecBody) != 50 {
		t.Fatalf("vector body is %d bytes, want 50", len(vecBody))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sh := SignedHeaders(tc.signed)
			if got := SigningKey(vecSK, "auth-v2/"+vecAK+"/"+vecTS+"/"+sh); got != tc.signingKey {
				t.Errorf("signing key = %s, want %s", got, tc.signingKey)
			}
			req := Request{Method: "POST", Path: vecPath, Headers: headers, Body: []byte(vecBody)}
			got, err := Sign(Credentials{AK: vecAK, SK: vecSK}, vecTS, sh, req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.auth {
				t.Errorf("authorization =\n %s\nwant\n %s", got, tc.auth)
			}
			if err := Verify(Credentials{AK: vecAK, SK: vecSK}, got, req); err != nil {
				t.Errorf("verify own signature: %v", err)
			}
			if err := Verify(Credentials{AK: vecAK, SK: "wrong"}, got, req); err == nil {
				t.Error("verify with wrong SK succeeded")
			}
			tampered := req
			tampered.Body = []byte(strings.Replace(vecBody, `"vdn":1`, `"vdn":2`, 1))
			if err := Verify(Credentials{AK: vecAK, SK: vecSK}, got, tampered); err == nil {
				t.Error("verify of tampered body succeeded")
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"AZaz09-._~", "AZaz09-._~"},
		{" ", "%20"},
		{"+/=&", "%2B%2F%3D%26"},
		{"é", "%C3%A9"},
		{"\x00\xff", "%00%FF"},
	}
	for _, tc := range tests {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCredentialsNeverPrintSK(t *testing.T) {
	t.Parallel()
	c := Credentials{AK: "ak", SK: "super-secret"}
	for _, s := range []string{c.String(), c.GoString()} {
		if strings.Contains(s, "super-secret") {
			t.Errorf("credentials printed the SK: %s", s)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "Bearer x", "auth-v2/a/b/c", "auth-v2//ts/host/sig", "auth-v2/a/ts/host/sig/extra"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// FuzzNormalize checks the percent-encoding never panics, only emits the
// unreserved set and %XX, and round-trips.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "abc", vecBody, "é ~+/%", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		var dec []byte
		for i := 0; i < len(n); i++ {
			c := n[i]
			if c == '%' {
				if i+2 >= len(n) {
					t.Fatalf("truncated escape in %q", n)
				}
				hi, lo := strings.IndexByte(upperHex, n[i+1]), strings.IndexByte(upperHex, n[i+2])
				if hi < 0 || lo < 0 {
					t.Fatalf("bad escape in %q", n)
				}
				dec = append(dec, byte(hi<<4|lo))
				i += 2
				continue
			}
			if !unreserved(c) {
				t.Fatalf("reserved byte %q left in %q", c, n)
			}
			dec = append(dec, c)
		}
		if string(dec) != s {
			t.Fatalf("round trip: %q -> %q -> %q", s, n, dec)
		}
	})
}
