import ClassificationServiceApp
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import VisionMamba

/// The ClassifyDigits example's model and photos, beside this example in the repository.
enum Fixtures {
    static let examples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()   // Tests/ClassificationServiceTests
        .deletingLastPathComponent()   // Tests
        .deletingLastPathComponent()   // ClassificationService
        .deletingLastPathComponent()   // Examples

    /// Loaded once, on first use, for every test: the one classifier both the service and the
    /// direct calls use.
    private static let loaded = Result { () throws -> ImageClassifier in
        Runtime.configure()
        return try ImageClassifier(checkpoint: examples.appendingPathComponent("ClassifyDigits/Model/vim-digits.safetensors"))
    }

    static func classifier() throws -> ImageClassifier { try loaded.get() }

    struct Photo: Sendable {
        let name: String
        /// The digit the file's name gives: `digit-<label>-valNNN.png`.
        let label: String
        let data: Data
    }

    static func photos() throws -> [Photo] {
        let folder = examples.appendingPathComponent("ClassifyDigits/Images")
        return try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasPrefix("digit-") && $0.hasSuffix(".png") }
            .sorted()
            .map { name in
                Photo(name: name, label: String(name.split(separator: "-")[1]),
                      data: try Data(contentsOf: folder.appendingPathComponent(name)))
            }
    }
}

@Suite struct ClassificationServiceTests {
    @Test func concurrentRequestsGetWhatTheSharedClassifierSays() async throws {
        let classifier = try Fixtures.classifier()
        let photos = try Fixtures.photos()
        try #require(photos.count == 10)
        // What the classifier says when called directly, before the server starts.
        let expected = try photos.map { try classifier.classify($0.data, top: 3) }

        let app = buildApplication(classifier: classifier, configuration: ServiceConfiguration(port: 0))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let requests = 30
            let answers = try await withThrowingTaskGroup(of: (Int, TestClient.Response).self) { group in
                for request in 0..<requests {
                    let photo = photos[request % photos.count]
                    group.addTask {
                        // A connection for each request: the live client sends all its requests
                        // down one connection, which the server answers one after the other;
                        // connections of their own make the classifications overlap. The live
                        // server listens on localhost. A debug build on two cores takes about
                        // 0.3 s an image, so the last answers come seconds after the first: a
                        // minute before a request gives up.
                        let response = try await TestClient.withClient(
                            host: "localhost", port: port, configuration: .init(timeout: .seconds(60))
                        ) { connection in
                            try await connection.post("/classify?top=3", body: ByteBuffer(bytes: photo.data))
                        }
                        return (request, response)
                    }
                }
                var answers: [(Int, TestClient.Response)] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }

            #expect(answers.count == requests)
            for (request, response) in answers {
                let photo = photos[request % photos.count]
                #expect(response.status == .ok, "\(photo.name)")
                let answer = try JSONDecoder().decode(ClassifyResponse.self, from: Data(try #require(response.body).readableBytesView))
                #expect(answer.predictions.first?.label == photo.label, "\(photo.name)")
                // The same classes and the same probabilities, to the bit.
                #expect(answer.predictions == expected[request % photos.count], "\(photo.name)")
            }
        }
    }

    @Test func badRequestsGetTheLibrarysMessage() async throws {
        let classifier = try Fixtures.classifier()
        let seven = try #require(try Fixtures.photos().first { $0.label == "7" })
        // The library's own words for each mistake, from direct calls.
        let text = Data("this is not an image".utf8)
        let notAnImage = try #require(throws: FileError.self) { try classifier.classify(text) }
        let empty = try #require(throws: FileError.self) { try classifier.classify(Data()) }
        let topZero = try #require(throws: VisionMambaError.self) { try classifier.classify(seven.data, top: 0) }
        let topEleven = try #require(throws: VisionMambaError.self) { try classifier.classify(seven.data, top: 11) }

        let app = buildApplication(classifier: classifier, configuration: ServiceConfiguration(port: 0, maxBodySize: 4096))
        try await app.test(.live) { client in
            try await expectError(client, "/classify", body: text, .badRequest, "\(notAnImage)")
            try await expectError(client, "/classify", body: Data(), .badRequest, "\(empty)")
            try await expectError(client, "/classify?top=0", body: seven.data, .badRequest, "\(topZero)")
            try await expectError(client, "/classify?top=11", body: seven.data, .badRequest, "\(topEleven)")
            try await expectError(client, "/classify?top=three", body: seven.data, .badRequest, "top must be an integer, got \"three\"")
            try await expectError(client, "/classify", body: Data(count: 5000), .contentTooLarge,
                                  "the body is larger than the limit of 4096 bytes")

            // After all that, the same connection still classifies, five classes by default.
            let response = try await client.execute(uri: "/classify", method: .post, body: ByteBuffer(bytes: seven.data))
            #expect(response.status == .ok)
            let answer = try JSONDecoder().decode(ClassifyResponse.self, from: Data(response.body.readableBytesView))
            #expect(answer.predictions.map(\.label).first == "7")
            #expect(answer.predictions.count == 5)
        }
    }

    @Test func healthNamesTheModel() async throws {
        let classifier = try Fixtures.classifier()
        let app = buildApplication(classifier: classifier, configuration: ServiceConfiguration(port: 0))
        try await app.test(.live) { client in
            let response = try await client.execute(uri: "/health", method: .get)
            #expect(response.status == .ok)
            let health = try JSONDecoder().decode(HealthResponse.self, from: Data(response.body.readableBytesView))
            #expect(health == HealthResponse(model: classifier.modelName, classes: 10))
        }
    }
}

/// Posts `body` to `uri` and expects `status` with the one-line JSON error `message`.
private func expectError(_ client: some TestClientProtocol, _ uri: String, body: Data, _ status: HTTPResponse.Status,
                         _ message: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let response = try await client.execute(uri: uri, method: .post, body: ByteBuffer(bytes: body))
    #expect(response.status == status, "\(uri)", sourceLocation: sourceLocation)
    let text = String(buffer: response.body)
    #expect(!text.contains("\n"), "\(uri): \(text)", sourceLocation: sourceLocation)
    let error = try JSONDecoder().decode(ErrorResponse.self, from: Data(text.utf8))
    #expect(error.error == message, "\(uri)", sourceLocation: sourceLocation)
}
