import Foundation
import XCTest
@testable import MambaIO

/// Hostile pickles, byte by byte: nesting, cycles, shared structure and memo references that
/// ask for unbounded work are refused with the exact FileError, never a stack overflow or a
/// hang; pickles numpy and torch.save write are read.
final class PickleTests: XCTestCase {
    static let path = "p.pkl"

    func unpickle(_ bytes: [UInt8], numpy: Bool = false) throws -> PickleValue {
        try bytes.withUnsafeBytes { raw in
            var u = Unpickler(path: Self.path, bytes: raw)
            u.allowsNumpy = numpy
            return try u.load()
        }
    }

    func assertThrows(_ expected: FileError, _ bytes: [UInt8], numpy: Bool = false, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try unpickle(bytes, numpy: numpy), file: file, line: line) { error in
            XCTAssertEqual(error as? FileError, expected, "\(type(of: error)): \(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)", file: file, line: line)
            XCTAssertLessThan("\(error)".count, 300, "\(error)", file: file, line: line)
        }
    }

    let proto: [UInt8] = [0x80, 0x02]
    let tooDeep = FileError.pickleTooDeep(path: path, limit: PickleLimits.maxDepth)

    /// BINUNICODE.
    func string(_ s: String) -> [UInt8] {
        let u = Array(s.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(u.count).littleEndian) { Array($0) } + u
    }

    // MARK: - Nesting and cycles

    func testDeeplyNestedContainersAreRefused() {
        // ((((…)))) 100,000 deep: EMPTY_TUPLE, then TUPLE1 over and over.
        assertThrows(tooDeep, proto + [0x29] + [UInt8](repeating: 0x85, count: 100_000) + [0x2E])
        // [[[[…]]]]: 100,000 EMPTY_LISTs, then each APPENDed to the one below it.
        assertThrows(tooDeep, proto + [UInt8](repeating: 0x5D, count: 100_000) + [UInt8](repeating: 0x61, count: 99_999) + [0x2E])
        // {0: {0: {…}}}: EMPTY_DICT and the key 0, 100,000 times, then SETITEM each into the one below.
        let dicts = [UInt8]([0x7D, 0x4B, 0x00]).repeated(100_000).dropLast(2)
        assertThrows(tooDeep, proto + dicts + [UInt8](repeating: 0x73, count: 99_999) + [0x2E])
    }

    func testDeepPickleThatFailsIsReleasedWithoutRecursion() {
        // The same tuples with no STOP: the stack still holds them when the error is thrown.
        let bytes = proto + [0x29] + [UInt8](repeating: 0x85, count: 100_000)
        assertThrows(.malformedPickle(path: Self.path, offset: bytes.count, detail: "truncated"), bytes)
        let lists = proto + [UInt8](repeating: 0x5D, count: 100_000) + [UInt8](repeating: 0x61, count: 99_999)
        assertThrows(.malformedPickle(path: Self.path, offset: lists.count, detail: "truncated"), lists)
    }

    func testDepthLimitIsExact() throws {
        let limit = PickleLimits.maxDepth
        // EMPTY_TUPLE and limit − 1 TUPLE1s: `limit` levels, read; one more is refused.
        _ = try unpickle(proto + [0x29] + [UInt8](repeating: 0x85, count: limit - 1) + [0x2E])
        assertThrows(tooDeep, proto + [0x29] + [UInt8](repeating: 0x85, count: limit) + [0x2E])
        // A memoized chain A, 3/5 of the limit deep, seen first near the root, then again under
        // B, half the limit deep: root = (A, B), B = ((…(A)…)). Each path alone is shorter
        // than the limit; the nesting is 1.1 times it.
        let a = [0x29] + [UInt8](repeating: 0x85, count: limit * 3 / 5 - 1) + [0x71, 0x00]
        let b = [0x68, 0x00] + [UInt8](repeating: 0x85, count: limit / 2)
        assertThrows(tooDeep, proto + a + b + [0x86, 0x2E])
    }

    func testReleasingTheDeepestAllowedValueFitsASmallThreadStack() throws {
        // The deepest lists allowed, read and released on a thread with a 512 KiB stack (macOS's
        // default for secondary threads): releasing is recursive, so this is what the limit buys.
        let limit = PickleLimits.maxDepth
        let bytes = proto + [UInt8](repeating: 0x5D, count: limit) + [UInt8](repeating: 0x61, count: limit - 1) + [0x2E]
        let done = expectation(description: "released")
        let thread = Thread {
            do { _ = try self.unpickle(bytes) } catch { XCTFail("\(error)") }
            done.fulfill()
        }
        thread.stackSize = 512 << 10
        thread.start()
        wait(for: [done], timeout: 60)
    }

    func testContainersThatContainThemselvesAreRefused() {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP: l = []; l.append(l).
        assertThrows(.pickleCycle(path: Self.path), proto + [0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E])
        // d = {}; d[1] = d.
        assertThrows(.pickleCycle(path: Self.path), proto + [0x7D, 0x71, 0x00, 0x4B, 0x01, 0x68, 0x00, 0x73, 0x2E])
        // A Namespace whose BUILD state is itself.
        let namespace = Array("cargparse\nNamespace\n".utf8) + [0x29, 0x81, 0x71, 0x00, 0x68, 0x00, 0x62, 0x2E]
        assertThrows(.pickleCycle(path: Self.path), proto + namespace)
    }

    /// Formatting a value for an error used to recurse forever on `l = [l]`.
    func testSelfReferencingListInAnErrorMessage() {
        // …, BINPERSID, STOP: the list is a persistent id, which the error describes.
        assertThrows(.malformedPickle(path: Self.path, offset: 9, detail: "unsupported persistent id [[[[…]]]]"),
                     proto + [0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x51, 0x2E])
    }

    /// t0 = (); t(i+1) = (ti, ti) through the memo: 649 bytes that describe 2^40 paths.
    func sharedTuples(_ levels: Int) -> [UInt8] {
        var b = proto + [0x29, 0x72] + [0, 0, 0, 0]                          // EMPTY_TUPLE, LONG_BINPUT 0
        for i in 0..<levels {
            b += [0x6A, UInt8(i), 0, 0, 0, 0x6A, UInt8(i), 0, 0, 0, 0x86]     // LONG_BINGET i twice, TUPLE2
            b += [0x72, UInt8(i + 1), 0, 0, 0]                                // LONG_BINPUT i + 1
        }
        return b
    }

    func testSharedStructureIsWalkedOnce() throws {
        let value = try unpickle(sharedTuples(40) + [0x2E])
        XCTAssertLessThanOrEqual(value.description.count, PickleFormat.maxLength + 1)
        XCTAssertTrue(value.description.hasPrefix("((((…), (…)), ((…), (…))), "), value.description)
        assertThrows(.malformedPickle(path: Self.path, offset: 649, detail: "unsupported persistent id ((((…), (…)), ((…), (…))), (((…), (…)), ((…), (…))))"),
                     sharedTuples(40) + [0x51, 0x2E])
    }

    // MARK: - Work in proportion to the size

    func testSharedDictIsCheckedOnce() throws {
        // d = {0: None, …, 19999: None}, memoized, then a list of 200,000 references to it: the
        // graph check once copied d's 40,000 keys and values at every reference (8 · 10^9).
        var b = proto + [0x5D, 0x7D, 0x28]                                 // EMPTY_LIST, EMPTY_DICT, MARK
        for i in 0..<20_000 { b += [0x4A] + withUnsafeBytes(of: Int32(i).littleEndian) { Array($0) } + [0x4E] }
        b += [0x75, 0x71, 0x00, 0x30, 0x28]                                // SETITEMS, BINPUT 0, POP, MARK
        b += [UInt8]([0x68, 0x00]).repeated(200_000) + [0x65, 0x2E]        // BINGET 0 …, APPENDS, STOP
        guard case .list(let l) = try unpickle(b) else { return XCTFail("not a list") }
        XCTAssertEqual(l.items.count, 200_000)
    }

    func testDictOfManyKeysIsBuiltInLinearTime() throws {
        var b = proto + [0x7D, 0x28]                                       // EMPTY_DICT, MARK
        for i in 0..<100_000 { b += string("k\(i)") + [0x4A] + withUnsafeBytes(of: Int32(i).littleEndian) { Array($0) } }
        guard case .dict(let d) = try unpickle(b + [0x75, 0x2E]) else { return XCTFail("not a dict") }
        XCTAssertEqual(d.count, 100_000)
        XCTAssertEqual(d.keys.last?.stringValue, "k99999")
        guard case .int(99_999)? = d["k99999"] else { return XCTFail("k99999") }
    }

    func testDictKeysCompareAsPythonsDo() throws {
        // {1: 'a', True: 'b', 1.0: 'c', 'x': 'd', 'x': 'e', b'x': 'f'} is {1: 'c', 'x': 'e', b'x': 'f'}.
        let one = [0x47, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0] as [UInt8]           // BINFLOAT 1.0
        let b = proto + [0x7D, 0x28, 0x4B, 0x01] + string("a") + [0x88] + string("b") + one + string("c")
            + string("x") + string("d") + string("x") + string("e") + [0x43, 0x01, 0x78] + string("f") + [0x75, 0x2E]
        guard case .dict(let d) = try unpickle(b) else { return XCTFail("not a dict") }
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d[.int(1)]?.stringValue, "c")
        XCTAssertEqual(d["x"]?.stringValue, "e")
        XCTAssertEqual(d.value(forText: "x")?.stringValue, "e")
        XCTAssertEqual(d[.bytes(Array("x".utf8))]?.stringValue, "f")
    }

    func testLongMemoizedKeySetOverAndOverIsRefused() {
        // A 100,000-character key, memoized, then set 2,000 times: each set hashes the whole key.
        var b = proto + [0x7D] + string(String(repeating: "x", count: 100_000)) + [0x71, 0x00, 0x30]
        for _ in 0..<2000 { b += [0x68, 0x00, 0x4B, 0x00, 0x73] }                // BINGET 0, BININT1 0, SETITEM
        let limit = PickleLimits.steps(forBytes: b.count + 1)
        assertThrows(.pickleTooComplex(path: Self.path, offset: 100_371, limit: limit), b + [0x2E])
    }

    func testRepeatedCopiesOfAMemoizedStringAreRefused() {
        // _codecs.encode(s, 'latin1') 100 times over one memoized 100,000-character string.
        var b = proto + Array("c_codecs\nencode\n".utf8) + [0x71, 0x00]
        b += string(String(repeating: "a", count: 100_000)) + [0x71, 0x01] + string("latin1") + [0x71, 0x02, 0x30, 0x30, 0x30]
        for _ in 0..<100 { b += [0x68, 0x00, 0x68, 0x01, 0x68, 0x02, 0x86, 0x52, 0x30] }
        let limit = PickleLimits.copies(forBytes: b.count + 2)
        assertThrows(.pickleTooLarge(path: Self.path, offset: 100_069, limit: limit), b + [0x4E, 0x2E])
    }

    // MARK: - What numpy and torch.save write

    static let numpyPickles: [String: String] = [
        // pickle.dumps({'data': np.zeros((0, 3072), np.uint8), 'labels': []}, protocol=2): __builtin__.bytes()
        "empty2": "gAJ9cQAoWAQAAABkYXRhcQFjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQJjbnVtcHkKbmRhcnJheQpxA0sAhXEEY19jb2RlY3MKZW5jb2RlCnEFWAEAAABicQZYBgAAAGxhdGluMXEHhnEIUnEJh3EKUnELKEsBSwBNAAyGcQxjbnVtcHkKZHR5cGUKcQ1YAgAAAHUxcQ6JiIdxD1JxEChLA1gBAAAAfHERTk5OSv////9K/////0sAdHESYoljX19idWlsdGluX18KYnl0ZXMKcRMpUnEUdHEVYlgGAAAAbGFiZWxzcRZdcRd1Lg==",
        // The same with fix_imports=False: builtins.bytes().
        "empty2-nofix": "gAJ9cQAoWAQAAABkYXRhcQFjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQJjbnVtcHkKbmRhcnJheQpxA0sAhXEEY19jb2RlY3MKZW5jb2RlCnEFWAEAAABicQZYBgAAAGxhdGluMXEHhnEIUnEJh3EKUnELKEsBSwBNAAyGcQxjbnVtcHkKZHR5cGUKcQ1YAgAAAHUxcQ6JiIdxD1JxEChLA1gBAAAAfHERTk5OSv////9K/////0sAdHESYoljYnVpbHRpbnMKYnl0ZXMKcRMpUnEUdHEVYlgGAAAAbGFiZWxzcRZdcRd1Lg==",
        // np.arange(6, dtype=np.uint8).reshape(2, 3) at protocols 2 to 5 (5: _frombuffer of a BYTEARRAY8).
        "small2": "gAJjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECY19jb2RlY3MKZW5jb2RlCnEDWAEAAABicQRYBgAAAGxhdGluMXEFhnEGUnEHh3EIUnEJKEsBSwJLA4ZxCmNudW1weQpkdHlwZQpxC1gCAAAAdTFxDImIh3ENUnEOKEsDWAEAAAB8cQ9OTk5K/////0r/////SwB0cRBiiWgDWAYAAAAAAQIDBAVxEWgFhnESUnETdHEUYi4=",
        "small3": "gANjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECQwFicQOHcQRScQUoSwFLAksDhnEGY251bXB5CmR0eXBlCnEHWAIAAAB1MXEIiYiHcQlScQooSwNYAQAAAHxxC05OTkr/////Sv////9LAHRxDGKJQwYAAQIDBAVxDXRxDmIu",
        "small4": "gASVkQAAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsCSwOGlGgDjAVkdHlwZZSTlIwCdTGUiYiHlFKUKEsDjAF8lE5OTkr/////Sv////9LAHSUYolDBgABAgMEBZR0lGIu",
        "small5": "gAWVfAAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWBgAAAAAAAAAAAQIDBAWUjAVudW1weZSMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiSwJLA4aUjAFDlHSUUpQu",
        // np.asfortranarray of the same, and np.zeros((1, 2), np.float32): read, but not as C-order uint8.
        "fortran": "gAJjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECY19jb2RlY3MKZW5jb2RlCnEDWAEAAABicQRYBgAAAGxhdGluMXEFhnEGUnEHh3EIUnEJKEsBSwJLA4ZxCmNudW1weQpkdHlwZQpxC1gCAAAAdTFxDImIh3ENUnEOKEsDWAEAAAB8cQ9OTk5K/////0r/////SwB0cRBiiGgDWAYAAAAAAwEEAgVxEWgFhnESUnETdHEUYi4=",
        "float32": "gAJjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECY19jb2RlY3MKZW5jb2RlCnEDWAEAAABicQRYBgAAAGxhdGluMXEFhnEGUnEHh3EIUnEJKEsBSwFLAoZxCmNudW1weQpkdHlwZQpxC1gCAAAAZjRxDImIh3ENUnEOKEsDWAEAAAA8cQ9OTk5K/////0r/////SwB0cRBiiWgDWAgAAAAAAAAAAAAAAHERaAWGcRJScRN0cRRiLg==",
    ]

    func numpyPickle(_ name: String) throws -> PickleValue {
        try readNumpyPickle(try XCTUnwrap(Data(base64Encoded: Self.numpyPickles[name]!)), path: name)
    }

    func testEmptyArraysAsNumpyPicklesThem() throws {
        for name in ["empty2", "empty2-nofix"] {
            guard case .dict(let d) = try numpyPickle(name), case .object(let array)? = d["data"] else { return XCTFail(name) }
            XCTAssertEqual(array.uint8Array()?.shape, [0, 3072], name)
            XCTAssertEqual(d["labels"]?.items?.count, 0, name)
        }
    }

    func testArraysAtEveryProtocol() throws {
        for name in ["small2", "small3", "small4", "small5"] {
            guard case .object(let array) = try numpyPickle(name), let (shape, bytes) = array.uint8Array() else { return XCTFail(name) }
            XCTAssertEqual(shape, [2, 3], name)
            XCTAssertEqual(bytes, [0, 1, 2, 3, 4, 5], name)
        }
        for name in ["fortran", "float32"] {
            guard case .object(let array) = try numpyPickle(name) else { return XCTFail(name) }
            XCTAssertNil(array.uint8Array(), name)
        }
    }

    func testByteConstructorsAreInert() {
        // bytes('a'): only bytes() is what pickle writes.
        let bytesCall = proto + Array("c__builtin__\nbytes\n".utf8) + string("a") + [0x85, 0x52, 0x2E]
        assertThrows(.malformedPickle(path: Self.path, offset: bytesCall.count - 1, detail: "bad bytes arguments"), bytesCall)
        // _codecs.encode('a', 'utf-8') and _codecs.encode('\u{100}', 'latin1').
        let encode = proto + Array("c_codecs\nencode\n".utf8)
        let utf8 = encode + string("a") + string("utf-8") + [0x86, 0x52, 0x2E]
        assertThrows(.malformedPickle(path: Self.path, offset: utf8.count - 1, detail: "bad _codecs.encode arguments"), utf8)
        let wide = encode + string("\u{100}") + string("latin1") + [0x86, 0x52, 0x2E]
        assertThrows(.malformedPickle(path: Self.path, offset: wide.count - 1, detail: "_codecs.encode of a character outside latin-1"), wide)
        // numpy's globals are for datasets only; anything else stays refused in both.
        assertThrows(.refusedGlobal(path: Self.path, name: "numpy.dtype"), proto + Array("cnumpy\ndtype\n".utf8) + [0x2E])
        assertThrows(.refusedGlobal(path: Self.path, name: "builtins.eval"), proto + Array("cbuiltins\neval\n".utf8) + [0x2E], numpy: true)
        assertThrows(.refusedGlobal(path: Self.path, name: "numpy.load"), proto + Array("cnumpy\nload\n".utf8) + [0x2E], numpy: true)
    }

    // MARK: - Formatting

    func testDescriptionIsOneBoundedEscapedLine() throws {
        // A list of 10,000 copies of 'a\n\0' + 100,000 'z', then b'\n\xff' and '\u{2028}'.
        var b = proto + [0x5D, 0x28] + string("a\n\u{0}" + String(repeating: "z", count: 100_000)) + [0x71, 0x00]
        b += [UInt8]([0x68, 0x00]).repeated(9_999) + [0x65]
        b += [0x43, 0x02, 0x0A, 0xFF, 0x61] + string("\u{2028}'\\") + [0x61, 0x2E]
        let text = try unpickle(b).description
        XCTAssertFalse(text.contains("\n"))
        XCTAssertLessThanOrEqual(text.count, PickleFormat.maxLength + 1)
        XCTAssertTrue(text.hasPrefix("['a\\n\\x00zzz"), text)
        XCTAssertTrue(text.hasSuffix("…"), text)
        // [1] * 10,000: MARK, BININT1 1, DUP 9,999 times, APPENDS.
        let ones = try unpickle(proto + [0x5D, 0x28, 0x4B, 0x01] + [UInt8](repeating: 0x32, count: 9_999) + [0x65, 0x2E])
        XCTAssertEqual(ones.description, "[1, 1, 1, 1, 1, 1, … (10000 items)]")
        XCTAssertEqual(PickleFormat.quoted([0x0A, 0xFF, 0x27, 0x41]), "b'\\n\\xff\\'A'")
        XCTAssertEqual(PickleFormat.quoted("\u{2028}'\\\u{7F}é"), "'\\u2028\\'\\\\\\x7fé'")
    }
}

extension Array {
    func repeated(_ n: Int) -> [Element] { Array((0..<n).map { _ in self }.joined()) }
}
