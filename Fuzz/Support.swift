// Shared by every fuzz target (compiled into each): what a reader may do with bad input.
import Foundation

/// FUZZ_SHOW_ERRORS=1 prints each refusal, to see what a saved input does.
let showsErrors = ProcessInfo.processInfo.environment["FUZZ_SHOW_ERRORS"] != nil

/// A reader refused its input: the error must be one of the project's typed errors (checked
/// by the caller) and its message one line of bounded length; anything else stops the fuzzer.
func checkMessage(_ error: Error) {
    let text = "\(error)"
    if showsErrors { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    if text.contains("\n") || text.contains("\r") || text.count > 1000 {
        fatalError("error message is not one bounded line (\(text.count) characters): \(String(text.prefix(300)).debugDescription)")
    }
}

/// Stops the fuzzer on an error that is not a typed one (a Foundation or runtime error leaking out).
func untyped(_ error: Error) -> Never {
    fatalError("untyped error \(type(of: error)): \(String("\(error)".prefix(300)).debugDescription)")
}
