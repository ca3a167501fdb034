package cmssim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// selfSigned makes a certificate that is its own CA, so a client can trust it
// through a cert pool loaded from the PEM. extraHost (the host of the listen
// address) is added to the SANs unless it is empty or unspecified.
func selfSigned(extraHost string, now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cmssim", Organization: []string{"cms-etl simulator"}},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(extraHost); ip != nil {
		if !ip.IsUnspecified() && !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if extraHost != "" && extraHost != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, extraHost)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writeCert writes the PEM to path, or to a new temporary file when path is
// empty; temp reports whether the file is the simulator's to remove.
func writeCert(path string, pemBytes []byte) (written string, temp bool, err error) {
	if path != "" {
		if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
			return "", false, fmt.Errorf("write certificate: %w", err)
		}
		return path, false, nil
	}
	f, err := os.CreateTemp("", "cmssim-ca-*.pem")
	if err != nil {
		return "", false, fmt.Errorf("create certificate file: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", false, fmt.Errorf("write certificate: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", false, fmt.Errorf("write certificate: %w", err)
	}
	return f.Name(), true, nil
}
