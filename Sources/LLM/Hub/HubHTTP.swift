// One HTTP exchange over URLSession, made synchronous: the hub client needs to see redirects itself (to read the
// hub's headers on them and to keep the token off other hosts) and to stream large bodies straight to a file.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A response's status line and headers; header names are matched without regard to case.
struct HTTPHead: Sendable {
    let url: URL
    let status: Int
    private let headers: [String: String]

    init(url: URL, status: Int, headers: [String: String]) {
        self.url = url
        self.status = status
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    subscript(_ name: String) -> String? { headers[name.lowercased()] }

    var isRedirect: Bool { [301, 302, 303, 307, 308].contains(status) && self["Location"] != nil }

    /// Where a redirect points, resolved against the request's URL.
    var location: URL? { self["Location"].flatMap { URL(string: $0, relativeTo: url)?.absoluteURL } }
}

/// Why an exchange produced no complete response: the network, or the caller's own handler.
enum HTTPFailure: Error {
    case transport(URLError)
    case handler(any Error)
}

/// Sends `request` without following redirects and blocks until the response has been read. `head` sees the status
/// and headers first; a 2xx body then goes to `body` piece by piece, any other body (an error page, a redirect's)
/// is kept, up to 64 KiB, and returned. A handler that throws ends the exchange with `.handler(error)`.
func sendHTTP(_ request: URLRequest, idleTimeout: TimeInterval,
              head: (HTTPHead) throws -> Void = { _ in },
              body: (Data) throws -> Void = { _ in }) throws(HTTPFailure) -> (head: HTTPHead, errorBody: Data) {
    let result: Result<(head: HTTPHead, errorBody: Data), HTTPFailure> =
        withoutActuallyEscaping(head) { head in
            withoutActuallyEscaping(body) { body in
                let exchange = HTTPExchange(head: head, body: body)
                let configuration = URLSessionConfiguration.ephemeral
                configuration.timeoutIntervalForRequest = idleTimeout
                configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
                configuration.urlCache = nil
                let session = URLSession(configuration: configuration, delegate: exchange, delegateQueue: nil)
                var request = request
                request.timeoutInterval = idleTimeout
                session.dataTask(with: request).resume()
                exchange.done.wait()
                session.finishTasksAndInvalidate()
                return exchange.finish()
            }
        }
    return try result.get()
}

/// The URLSession delegate behind `sendHTTP`. Its callbacks run one at a time on the session's queue while the
/// caller waits on `done`, which orders every write here before the caller's reads.
private final class HTTPExchange: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    private var headHandler: ((HTTPHead) throws -> Void)?
    private var bodyHandler: ((Data) throws -> Void)?
    private var head: HTTPHead?
    private var errorBody = Data()
    private var failure: HTTPFailure?

    init(head: @escaping (HTTPHead) throws -> Void, body: @escaping (Data) throws -> Void) {
        headHandler = head
        bodyHandler = body
    }

    /// The outcome, dropping the handlers (the caller's closures must not outlive `sendHTTP`).
    func finish() -> Result<(head: HTTPHead, errorBody: Data), HTTPFailure> {
        headHandler = nil
        bodyHandler = nil
        if let failure { return .failure(failure) }
        guard let head else { return .failure(.transport(URLError(.badServerResponse))) }
        return .success((head, errorBody))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)  // the caller follows redirects itself
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let http = response as? HTTPURLResponse, let url = http.url ?? dataTask.originalRequest?.url else {
            failure = .transport(URLError(.badServerResponse))
            return completionHandler(.cancel)
        }
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields { headers["\(key)"] = "\(value)" }
        let head = HTTPHead(url: url, status: http.statusCode, headers: headers)
        self.head = head
        do {
            try headHandler?(head)
            completionHandler(.allow)
        } catch {
            failure = .handler(error)
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil, let head else { return }
        guard (200..<300).contains(head.status) else {
            if errorBody.count < 1 << 16 { errorBody.append(data.prefix((1 << 16) - errorBody.count)) }
            return
        }
        do { try bodyHandler?(data) } catch {
            failure = .handler(error)
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        if failure == nil, let error {
            failure = .transport(error as? URLError ?? URLError(.unknown, userInfo: [NSUnderlyingErrorKey: error]))
        }
        done.signal()
    }
}
