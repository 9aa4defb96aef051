// How long an HTTP/1 connection lives, as RFC 9112 has it, which Hummingbird's HTTP1Channel leaves partly undone:
// it only ends a connection after a request that says `Connection: close`, and then only half-closes it; it keeps
// an HTTP/1.0 connection open although the client waits for the end of it; it answers a malformed request head
// with an empty 400; and a client that half-closes after its request looks to it like one that hung up, so a
// generation watching for the disconnect is cancelled and the client gets a 500. `HTTP1ConnectionHandler` sits
// between NIO's HTTP/1 codec and Hummingbird's, where requests still have their version.
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// Hummingbird's HTTP/1 channel with `HTTP1ConnectionHandler` in its pipeline.
struct HTTP1ConnectionChannel: ServerChildChannel {
    let http1: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try operations.addHandler(HTTP1ConnectionHandler(), position: .after(decoder))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 with `HTTP1ConnectionHandler`, closing connections idle for `idleTimeout`.
    static func http1(idleTimeout: TimeAmount) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            HTTP1ConnectionChannel(http1: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)))
        }
    }
}

/// Ends each connection when RFC 9112 says it ends, and answers a malformed request in OpenAI's error shape:
/// - A request that does not keep the connection alive (HTTP/1.0 without `Connection: keep-alive`, or any with
///   `Connection: close`) gets its response with `Connection: close`, then the connection closes; requests the
///   client pipelined behind it are dropped unread (the client must send them again on a new connection).
/// - So does a response that says `Connection: close` itself (the completions: watching for the client's disconnect
///   uses up the connection), and one to HTTP/1.0 without a Content-Length (its end is the connection's end).
/// - An HTTP/1.0 client gets HTTP/1.0 responses (never chunked), with `Connection: keep-alive` when it asked.
/// - A client that half-closes after whole requests gets their responses, then the connection closes. Its end of
///   input is held back from Hummingbird, which would take it for a disconnect; instead an interim `100 Continue`
///   goes out (HTTP/1.1 clients must skip it), and a client that has really gone answers it with a reset, which
///   closes the channel and cancels the generation as before. (HTTP/1.0 has no 1xx responses: an HTTP/1.0 client
///   that hangs up after its request is noticed only when its reply is written.)
/// - A request whose head is malformed (`Content-Length: abc`, two that disagree) gets a 400 in OpenAI's error shape
///   once the requests before it are answered, then the connection closes. A malformed body is the route's to
///   report (it is reading it), and ends the connection after the response.
/// Closing sends the client an end of stream after the last response and reads on for a moment, so that requests
/// still on their way do not make the system reset the connection and lose that response.
final class HTTP1ConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A request read and not answered yet.
    private struct Exchange {
        var version: HTTPVersion
        /// Whether the client lets the connection live on after the response.
        var keepAlive: Bool

        var isHTTP10: Bool { (version.major, version.minor) < (1, 1) }
    }

    /// Requests whose response has not started, oldest first (more than one when the client pipelines).
    private var unanswered = [Exchange]()
    /// A request's head has been read, and its end not yet.
    private var readingRequest = false
    /// A response's head has been written, and its end not yet.
    private var responding = false
    /// The response being written is the connection's last.
    private var closeAfterResponse = false
    /// Nothing more is read: a request that ends the connection was read whole, the framing broke, or the client
    /// half-closed.
    private var readingDone = false
    /// The client half-closed after whole requests: the connection ends once they are answered.
    private var clientHalfClosed = false
    /// A request head that could not be parsed, answered once the requests before it are.
    private var malformed: HTTPParserError?
    /// The connection is ending: nothing more is written.
    private var closing = false

    /// Seconds the connection still reads (and drops) what arrives after the server's end of stream.
    static let lingerSeconds: Int64 = 2

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !readingDone else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            unanswered.append(Exchange(version: head.version, keepAlive: head.isKeepAlive))
            readingRequest = true
        case .body:
            break
        case .end:
            readingRequest = false
            if unanswered.last?.keepAlive == false { readingDone = true }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? HTTPParserError else { return context.fireErrorCaught(error) }
        // Bytes after a request that ends the connection are dropped, garbage included ("data after Connection: close").
        guard !readingDone else { return }
        readingDone = true
        if !readingRequest {
            malformed = error
            if unanswered.isEmpty && !responding { answerMalformed(context: context) }
        } else if !unanswered.isEmpty {
            // The body being read is malformed: the route reading it answers (a 400), and the connection ends.
            unanswered[unanswered.count - 1].keepAlive = false
            context.fireErrorCaught(error)
        } else if responding {
            closeAfterResponse = true  // the route answered without reading its whole body
        } else {
            endConnection(context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed, !readingRequest, !closing,
              !unanswered.isEmpty || responding else {
            return context.fireUserInboundEventTriggered(event)
        }
        readingDone = true
        clientHalfClosed = true
        if responding && unanswered.isEmpty { closeAfterResponse = true }
        if !responding, let next = unanswered.first, !next.isHTTP10 {
            let probe = HTTPResponseHead(version: next.version, status: .continue)
            context.writeAndFlush(wrapOutboundOut(.head(probe)), promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !closing else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            let request = unanswered.isEmpty ? Exchange(version: .http1_1, keepAlive: true) : unanswered.removeFirst()
            responding = true
            // An HTTP/1.0 client reads a body of unknown length to the end of the connection.
            let framed = !request.isHTTP10 || head.headers.contains(name: "content-length")
            closeAfterResponse = closeAfterResponse || !request.keepAlive || !head.isKeepAlive || !framed
                || (clientHalfClosed && unanswered.isEmpty)
            if request.isHTTP10 { head.version = request.version }  // so the encoder does not chunk the body
            if closeAfterResponse {
                head.headers.replaceOrAdd(name: "connection", value: "close")
            } else if request.isHTTP10 {
                head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end where closeAfterResponse:
            responding = false
            endConnection(context: context, last: data, promise: promise)
        case .end:
            responding = false
            context.write(data, promise: promise)
            if malformed != nil && unanswered.isEmpty { answerMalformed(context: context) }
        case .head, .body:
            context.write(data, promise: promise)
        }
    }

    /// The 400 for a request head that could not be parsed; the connection's last response.
    private func answerMalformed(context: ChannelHandlerContext) {
        let body = APIError.invalid("malformed HTTP request: \(describe(malformed ?? .unknown))").json
        let headers: HTTPHeaders = ["content-type": "application/json", "content-length": "\(body.readableBytes)",
                                    "connection": "close"]
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))),
                      promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        endConnection(context: context, last: wrapOutboundOut(.end(nil)))
    }

    /// Writes `last` (if any) and flushes, then sends the client an end of stream, and closes the connection
    /// `lingerSeconds` later if the client has not closed it by then.
    private func endConnection(context: ChannelHandlerContext, last: NIOAny? = nil, promise: EventLoopPromise<Void>? = nil) {
        closing = true
        readingDone = true
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.cascade(to: promise)
        if let last { context.write(last, promise: written) } else { written.succeed(()) }
        context.flush()
        let channel = context.channel
        written.futureResult.whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(Self.lingerSeconds)) { channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension HTTP1ConnectionHandler: Sendable {}

/// What is wrong with a request NIO could not parse, in words.
func describe(_ error: HTTPParserError) -> String {
    switch error {
    case .invalidContentLength: "the Content-Length header is not a number"
    case .unexpectedContentLength: "conflicting Content-Length headers (two that differ, or one beside Transfer-Encoding)"
    case .invalidChunkSize: "a chunk size is not a hexadecimal number"
    case .headerOverflow: "the headers are too large"
    case .invalidMethod: "the method is not valid"
    case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort: "the URL is not valid"
    case .invalidVersion: "the HTTP version is not valid"
    case .invalidHeaderToken, .invalidCharactersUsed: "a header has characters HTTP does not allow"
    case .invalidEOFState: "the connection ended in the middle of the request"
    default: "\(error)"
    }
}
