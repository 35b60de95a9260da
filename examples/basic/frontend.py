"""Stand-in for a Next.js server: serves a page on $PORT that shows what the backend says."""
import http.server
import os
import signal
import sys
import urllib.request

PORT = int(os.environ.get("PORT", "4000"))
BACKEND = os.environ.get("BACKEND_URL", "http://127.0.0.1:4001")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with urllib.request.urlopen(BACKEND + "/api/time", timeout=2) as response:
                backend = response.read().decode()
            status = 200
        except OSError as err:
            backend = f"backend unavailable: {err}"
            status = 502
        data = f"<h1>frontend</h1><p>backend says: {backend}</p>\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("page " + fmt % args, flush=True)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(f"frontend ready on http://127.0.0.1:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
