// Outpost in Swift: what UniFFI leaves to each language, a generation as an
// `AsyncThrowingStream<String, Error>` of text pieces, beside the binding
// generated from crates/ffi/src/api.rs (outpost.swift). Iterating starts
// the generation on a thread of its own; ending the iteration (break, the
// task cancelled, the stream dropped) sets the generation's CancelFlag, so
// it stops at its next token.
//
// NOT COMPILED HERE: this repository's machines have no Swift toolchain
// (Debian 12 ships none). crates/xtask/tests/kotlin_swift_bindings.rs checks
// that the generated Swift still declares the calls this file makes.
//
//     for try await piece in model.generateStream(prompt: "Hello") {
//         print(piece, terminator: "")
//     }

import Foundation

/// Hands each piece to the stream; false (stop) once nobody listens.
private final class StreamSink: PieceSink, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<String, Error>.Continuation

    init(_ continuation: AsyncThrowingStream<String, Error>.Continuation) {
        self.continuation = continuation
    }

    func piece(text: String) -> Bool {
        if case .terminated = continuation.yield(text) {
            return false
        }
        return true
    }
}

extension LocalModel {
    /// The pieces of this model's completion of `prompt` (plain text).
    public func generateStream(
        prompt: String, options: GenerateOptions = GenerateOptions()
    ) -> AsyncThrowingStream<String, Error> {
        pieces { cancel, sink in
            try self.generate(prompt: prompt, options: options, cancel: cancel, sink: sink)
        }
    }

    /// The pieces of this model's answer to `messages` (its chat template).
    public func chatStream(
        messages: [ChatMessage], options: GenerateOptions = GenerateOptions()
    ) -> AsyncThrowingStream<String, Error> {
        pieces { cancel, sink in
            try self.chat(messages: messages, options: options, cancel: cancel, sink: sink)
        }
    }

    private func pieces(
        _ run: @escaping @Sendable (CancelFlag, PieceSink) throws -> Generated
    ) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            let cancel = CancelFlag()
            continuation.onTermination = { _ in cancel.cancel() }
            let worker = Thread {
                do {
                    _ = try run(cancel, StreamSink(continuation))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            worker.name = "outpost-generate"
            worker.start()
        }
    }
}
