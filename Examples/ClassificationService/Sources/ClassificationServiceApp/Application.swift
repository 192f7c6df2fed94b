import Foundation
import Hummingbird
import NIOCore
import NIOPosix
import VisionMamba

/// Where the service listens and what it accepts.
public struct ServiceConfiguration: Sendable {
    /// The address to bind: 127.0.0.1 serves this machine only, 0.0.0.0 every interface.
    public var host: String
    /// The port to bind; 0 takes a free one (the tests do).
    public var port: Int
    /// The largest request body read, in bytes; a larger one gets 413.
    public var maxBodySize: Int

    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodySize: Int = 16 << 20) {
        self.host = host
        self.port = port
        self.maxBodySize = maxBodySize
    }
}

/// The service: `POST /classify` and `GET /health`, every request served by the one
/// `classifier`. An `ImageClassifier` is immutable after loading and `Sendable`, so concurrent
/// requests share it rather than each loading a copy of the model.
public func buildApplication(
    classifier: ImageClassifier,
    configuration: ServiceConfiguration = ServiceConfiguration()
) -> some ApplicationProtocol {
    let router = Router(context: ServiceRequestContext.self)
    router.get("/health") { _, _ in
        HealthResponse(model: classifier.modelName, classes: classifier.classNames.count)
    }
    router.post("/classify") { request, context in
        try await classify(request, context: context, classifier: classifier, maxBodySize: configuration.maxBodySize)
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                             serverName: "ClassificationService"))
}

/// Hummingbird's basic context, with JSON keys in a fixed (sorted) order so that an answer reads
/// the same each time: `{"classIndex":7,"label":"7","probability":0.905}`.
struct ServiceRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    var responseEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }
}

/// `POST /classify?top=N`: the body is a JPEG or PNG file.
private func classify(_ request: Request, context: some RequestContext, classifier: ImageClassifier,
                      maxBodySize: Int) async throws -> ClassifyResponse {
    // Five by default, as the library's, fewer for a model with fewer classes. The range is the
    // library's to check: its error names the model's class count.
    let top: Int
    if let text = request.uri.queryParameters["top"] {
        guard let value = Int(text) else {
            throw ServiceError(.badRequest, "top must be an integer, got \"\(text)\"")
        }
        top = value
    } else {
        top = min(5, classifier.classNames.count)
    }

    let body: ByteBuffer
    do {
        body = try await request.body.collect(upTo: maxBodySize)
    } catch is NIOTooManyBytesError {
        throw ServiceError(.contentTooLarge, "the body is larger than the limit of \(maxBodySize) bytes")
    }
    let image = Data(body.readableBytesView)

    do {
        // `classify` is synchronous and CPU-bound. Hummingbird runs handlers as Swift tasks, off
        // NIO's event loops already, but a task that blocks holds one of the few threads of the
        // cooperative pool (one per core), which every other request's handling also needs, for
        // as long as the model runs: milliseconds for the digits model, far longer for the
        // released ones. NIO's thread pool is there for blocking work, so the model runs there
        // and this task waits without holding a thread. Its one thread per core also bounds how
        // many images are classified at once; requests beyond that wait their turn.
        let predictions = try await NIOThreadPool.singleton.runIfActive {
            try classifier.classify(image, top: top)
        }
        return ClassifyResponse(predictions: predictions)
    } catch let error as VisionMambaError {
        // Misuse caught before the model runs: here, a `top` out of range.
        throw ServiceError(.badRequest, "\(error)")
    } catch let error as FileError {
        // The bytes are not an image the decoders accept: empty, not JPEG or PNG, damaged, too large.
        throw ServiceError(.badRequest, "\(error)")
    } catch {
        // Anything else is the service's fault, not the client's: its details go to the log.
        context.logger.error("classification failed: \(error)")
        throw ServiceError(.internalServerError, "classification failed")
    }
}

/// The answer to `POST /classify`: `VisionMamba`'s own `Prediction`s, most probable first.
public struct ClassifyResponse: ResponseCodable, Sendable, Equatable {
    public var predictions: [Prediction]
}

/// The answer to `GET /health`.
public struct HealthResponse: ResponseCodable, Sendable, Equatable {
    public var model: String
    public var classes: Int

    public init(model: String, classes: Int) {
        self.model = model
        self.classes = classes
    }
}

/// The body of every error answer: `{"error":"..."}`.
public struct ErrorResponse: Codable, Sendable, Equatable {
    public var error: String

    public init(error: String) {
        self.error = error
    }
}

/// A request the service refuses, answered with its status and an ``ErrorResponse``.
struct ServiceError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try context.responseEncoder.encode(ErrorResponse(error: message), from: request, context: context)
        response.status = status
        return response
    }
}
