// Who may use the server: an API key for the OpenAI endpoints (`--api-key`, sent as `Authorization: Bearer KEY`
// as OpenAI's clients do), and which other web origins' pages may call it (CORS, off unless `--cors-origin`).
import Foundation
import Hummingbird

/// The server's access rules.
public struct ServerAccess: Sendable {
    /// The key every `/v1` request must bear, or nil for none. The chat page and `/health` stay open: the page
    /// asks for the key itself.
    public var apiKey: String?
    /// The origin whose pages may call the API from a browser ("https://example.org", or "*" for any); nil
    /// sends no CORS headers, so browsers keep other sites' pages from reading the answers.
    public var corsOrigin: String?

    public init(apiKey: String? = nil, corsOrigin: String? = nil) {
        self.apiKey = apiKey
        self.corsOrigin = corsOrigin
    }

    /// Whether `host` is reachable only from this machine.
    public static func isLoopback(_ host: String) -> Bool {
        ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased()) || host.hasPrefix("127.")
    }

    /// A warning for the banner when the server is open to the network without a key, else nil.
    public func warning(host: String) -> String? {
        guard apiKey == nil, !Self.isLoopback(host) else { return nil }
        return "listening on \(host) without --api-key: anyone who can reach this machine can use the model"
    }
}

/// Refuses `/v1` requests without the key with a 401 in OpenAI's error shape. The comparison takes the same
/// time whatever the key sent, so the key cannot be found a byte at a time by timing it.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v1") else { return try await next(request, context) }
        // Answered here, not thrown, so that a CORS middleware around this one still adds its headers.
        guard let header = request.headers[.authorization] else {
            return APIError(status: .unauthorized, code: "invalid_api_key",
                            message: "You didn't provide an API key: send it as Authorization: Bearer KEY").response
        }
        let prefix = "Bearer "
        let given = header.hasPrefix(prefix) ? Array(header.utf8.dropFirst(prefix.utf8.count)) : []
        guard Self.equal(given, key) else {
            return APIError(status: .unauthorized, code: "invalid_api_key", message: "Incorrect API key provided").response
        }
        return try await next(request, context)
    }

    /// Equality in time that depends only on the lengths (the key's length is no secret worth keeping).
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count) | (a.count == b.count ? 0 : 1)
        for i in 0..<b.count { difference |= (i < a.count ? a[i] : 0) ^ b[i] }
        return difference == 0
    }
}

extension APIError {
    init(status: HTTPResponse.Status, code: String, message: String) {
        self.init(status: status, message: message, param: nil, code: code)
    }
}
