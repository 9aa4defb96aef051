// Every failure the API reports, in OpenAI's error shape, and the middleware that turns whatever a handler
// or the router throws into it, so that no request gets an empty or HTML error and none takes the server down.
import Foundation
import Hummingbird
import NIOHTTP1

/// An error answered as `{"error": {"message", "type", "param", "code"}}` with an HTTP status.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    /// The request field at fault ("messages[1].content", "max_tokens"), if one is.
    var param: String?
    /// A machine-readable reason, as OpenAI gives for some errors ("context_length_exceeded").
    var code: String?

    /// 400: the request is malformed or asks for something out of range.
    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, param: param, code: code)
    }

    /// OpenAI's type: its client maps statuses to exception classes and shows this alongside.
    var type: String {
        switch status.code {
        case 404: "not_found_error"
        case 400..<500: "invalid_request_error"
        default: "server_error"
        }
    }

    private struct Body: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?

            func encode(to encoder: any Encoder) throws {  // param and code as null when absent, as OpenAI's are
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                try c.encode(param, forKey: .param)
                try c.encode(code, forKey: .code)
            }
            private enum CodingKeys: String, CodingKey { case message, type, param, code }
        }
        var error: Detail
    }

    /// The JSON body, also sent as an SSE event when a stream fails after its headers went out.
    var json: ByteBuffer {
        jsonBuffer(Body(error: .init(message: message, type: type, param: param, code: code)))
    }

    var response: Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: json))
    }
}

/// Answers every error below it in OpenAI's shape: `APIError`s as they are, the router's 404 for an unknown
/// route, Hummingbird's own HTTP errors with their status, anything else as a logged 500, except the
/// cancellation of a request whose client has gone.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response
        } catch let error as HTTPError where error.status == .notFound {
            return APIError(status: .notFound, message: "no route \(request.method) \(request.uri.path)").response
        } catch let error as CancellationError {
            throw error  // the client went away: there is no one to answer
        } catch let error as any HTTPResponseError {
            return APIError(status: error.status, message: error.status.reasonPhrase).response
        } catch let error as HTTPParserError {  // malformed framing in the body (a bad chunk size, say)
            return APIError.invalid("malformed HTTP request: \(describe(error))").response
        } catch {
            context.logger.error("request failed: \(error)")
            return APIError(status: .internalServerError, message: "internal error: \(error)").response
        }
    }
}

/// `value` as compact JSON with snake_case keys, sorted so that the bytes are the same every time (the wire
/// format of every response).
func jsonBuffer(_ value: some Encodable) -> ByteBuffer {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding these plain structs of strings and numbers cannot fail.
    return ByteBuffer(bytes: try! encoder.encode(value))
}
