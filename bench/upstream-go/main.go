// The benchmark's upstream: a grpc-go server that is not the bottleneck, built offline from Debian's golang-go and
// golang-google-grpc-dev (bench/setup.sh). No protoc: every method is served by one UnknownServiceHandler through a
// codec that passes message bytes through untouched.
//
//	<svc>/Unary   echoes the request message back.
//	<svc>/Stream  reads one request message whose first 8 bytes are N and S (big-endian uint32) and answers N
//	              messages of S bytes each.
//
// Any service name works (/bench.Echo/Unary, /bench.EchoTls/Unary, ...), so proxies can tell routes apart by URI.
// It serves plaintext gRPC on -port and gRPC over TLS on -tls-port, and counts the calls it completed with status
// OK on an HTTP endpoint: GET http://127.0.0.1:<stats-port>/stats → {"unary":..,"stream":..,"failed":..}.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// rawCodec hands the wire bytes of a message to the handler and sends []byte as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	// grpc-go gives every received message its own buffer, so keeping it is safe.
	*m = data
	return nil
}

func (rawCodec) String() string { return "raw" }
func (rawCodec) Name() string   { return "proto" }

type counters struct {
	unary  uint64
	stream uint64
	failed uint64
}

var served counters

func handle(_ interface{}, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	err := serve(method, stream)
	if err != nil {
		atomic.AddUint64(&served.failed, 1)
	}
	return err
}

func serve(method string, stream grpc.ServerStream) error {
	var req []byte
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	switch {
	case strings.HasSuffix(method, "/Unary"):
		if err := stream.SendMsg(req); err != nil {
			return err
		}
		atomic.AddUint64(&served.unary, 1)
		return nil
	case strings.HasSuffix(method, "/Stream"):
		if len(req) < 8 {
			return status.Error(codes.InvalidArgument, "Stream wants N and S as two big-endian uint32")
		}
		n := binary.BigEndian.Uint32(req[0:4])
		size := binary.BigEndian.Uint32(req[4:8])
		if size > 16<<20 {
			return status.Error(codes.InvalidArgument, "S above 16 MiB")
		}
		msg := make([]byte, size)
		for i := uint32(0); i < n; i++ {
			if err := stream.SendMsg(msg); err != nil {
				return err
			}
		}
		atomic.AddUint64(&served.stream, 1)
		return nil
	}
	return status.Errorf(codes.Unimplemented, "unknown method %s", method)
}

func newServer(extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.CustomCodec(rawCodec{}),
		grpc.UnknownServiceHandler(handle),
		grpc.MaxRecvMsgSize(64 << 20),
	}, extra...)
	return grpc.NewServer(opts...)
}

func listen(addr string) net.Listener {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("listen %s: %v", addr, err)
	}
	return lis
}

func main() {
	port := flag.Int("port", 0, "plaintext gRPC port")
	tlsPort := flag.Int("tls-port", 0, "gRPC over TLS port (0: none)")
	statsPort := flag.Int("stats-port", 0, "HTTP port of /stats")
	cert := flag.String("cert", "", "PEM certificate for -tls-port")
	key := flag.String("key", "", "PEM private key for -tls-port")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	flag.Parse()

	plain := newServer()
	go func() { log.Fatal(plain.Serve(listen(fmt.Sprintf("%s:%d", *host, *port)))) }()

	if *tlsPort != 0 {
		creds, err := credentials.NewServerTLSFromFile(*cert, *key)
		if err != nil {
			log.Fatalf("TLS: %v", err)
		}
		secure := newServer(grpc.Creds(creds))
		go func() { log.Fatal(secure.Serve(listen(fmt.Sprintf("%s:%d", *host, *tlsPort)))) }()
	}

	http.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]uint64{
			"unary":  atomic.LoadUint64(&served.unary),
			"stream": atomic.LoadUint64(&served.stream),
			"failed": atomic.LoadUint64(&served.failed),
		})
	})
	statsLis := listen(fmt.Sprintf("127.0.0.1:%d", *statsPort))
	fmt.Fprintf(os.Stdout, "ready grpc=%d grpcs=%d stats=%d\n", *port, *tlsPort, *statsPort)
	log.Fatal(http.Serve(statsLis, nil))
}
