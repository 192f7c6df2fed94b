// Fuzz target: one CIFAR batch as CIFARDataset reads it. The first byte chooses the format
// (bit 0: python pickle, else binary records) and the class count (bit 1: 100, else 10); the
// rest is the batch file. Compiled into one module with CIFAR.swift and Dataset.swift.
import Foundation
import MambaIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCIFAR(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let python = data[0] & 1 != 0, classes = data[0] & 2 != 0 ? 100 : 10
    let batch = UnsafeBufferPointer(start: data + 1, count: size - 1)
    do {
        let (pixels, labels) = python
            ? try CIFARDataset.pythonBatch(try readNumpyPickle(Data(batch), path: "fuzz-batch"), path: "fuzz-batch", classes: classes)
            : try CIFARDataset.binaryBatch(Array(batch), path: "fuzz-batch.bin", classes: classes)
        if pixels.count != labels.count * 3072 || labels.contains(where: { $0 < 0 || $0 >= classes }) {
            fatalError("batch of \(labels.count) labels and \(pixels.count) pixel bytes")
        }
    } catch let error as FileError {
        checkMessage(error)
    } catch let error as DatasetError {
        checkMessage(error)
    } catch {
        untyped(error)
    }
    return 0
}
