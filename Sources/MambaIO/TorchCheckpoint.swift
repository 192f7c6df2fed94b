/// A PyTorch checkpoint as torch.save (zip format, PyTorch ≥ 1.6) writes it: `<prefix>/data.pkl`,
/// the pickled object, and `<prefix>/data/<key>` holding each storage's raw bytes.
public struct TorchCheckpoint {
    public let path: String
    /// The unpickled top-level object (for the released Vim files: a dict with model, optimizer,
    /// lr_scheduler, epoch, model_ema, scaler and args).
    public let root: PickleValue
    let archive: ZipArchive
    let prefix: String

    public static func read(_ path: String) throws -> TorchCheckpoint {
        let archive = try ZipArchive(path)
        guard let pkl = archive.names.first(where: { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }) else {
            throw IOFailure(path, "zip archive has no data.pkl; not a torch.save checkpoint")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        let (storage, offset, count) = try archive.data(pkl)
        var unpickler = Unpickler(path: path, bytes: UnsafeRawBufferPointer(start: storage.pointer + offset, count: count))
        let root = try unpickler.load()
        return TorchCheckpoint(path: path, root: root, archive: archive, prefix: prefix)
    }

    /// Keys of the top-level dict, if it is one.
    public var topLevelKeys: [String] {
        if case .dict(let d) = root { return d.keys.compactMap(\.stringValue) }
        return []
    }

    /// The model's state dict: the top-level dict if it holds tensors, else the one under
    /// "model", "state_dict" or "model_ema" (in that order); a leading "module." (from
    /// DistributedDataParallel) is removed from every name; non-tensor entries are skipped.
    public func stateDict() throws -> TensorFile {
        guard case .dict(let top) = root else { throw IOFailure(path, "checkpoint is not a dict of tensors") }
        var source = top
        if !Self.holdsTensors(top) {
            guard let found = ["model", "state_dict", "model_ema"].lazy.compactMap({ key -> PickleDict? in
                if case .dict(let d)? = top[key], Self.holdsTensors(d) { return d }
                return nil
            }).first else {
                throw IOFailure(path, "no state dict found (top-level keys: \(topLevelKeys.joined(separator: ", ")))")
            }
            source = found
        }
        var file = TensorFile()
        for (k, v) in zip(source.keys, source.values) {
            guard var name = k.stringValue, case .tensor(let t) = v else { continue }
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            file.append(name, try tensor(t, name: name))
        }
        return file
    }

    static func holdsTensors(_ d: PickleDict) -> Bool {
        d.values.contains { if case .tensor = $0 { true } else { false } }
    }

    /// A view of the tensor's elements in its storage; a non-contiguous view is copied to row-major.
    public func tensor(_ t: PickleTensor, name: String) throws -> StoredTensor {
        let (bytes, base, count) = try archive.data(prefix + "data/" + t.storage.key)
        let esize = t.storage.dtype.byteCount
        guard count >= t.storage.count * esize else {
            throw IOFailure(path, "tensor '\(name)': storage \(t.storage.key) holds \(count) bytes, expected \(t.storage.count * esize)")
        }
        let elements = t.shape.reduce(1, *)
        if elements == 0 { return StoredTensor(dtype: t.storage.dtype, shape: t.shape, storage: bytes, offset: base) }
        // The last element any index can reach must lie inside the storage.
        let last = t.offset + zip(t.shape, t.stride).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        guard last < t.storage.count else {
            throw IOFailure(path, "tensor '\(name)' of shape \(t.shape) reaches element \(last) of a \(t.storage.count)-element storage")
        }
        var contiguous = [Int](repeating: 1, count: t.shape.count)
        for i in stride(from: t.shape.count - 2, through: 0, by: -1) { contiguous[i] = contiguous[i + 1] * t.shape[i + 1] }
        let isContiguous = zip(zip(t.shape, t.stride), contiguous).allSatisfy { $0.0.0 == 1 || $0.0.1 == $0.1 }
        if isContiguous {
            return StoredTensor(dtype: t.storage.dtype, shape: t.shape, storage: bytes, offset: base + t.offset * esize)
        }
        // Gather a strided view into row-major order.
        let out = UnsafeMutableRawPointer.allocate(byteCount: elements * esize, alignment: 64)
        var index = [Int](repeating: 0, count: t.shape.count)
        for i in 0..<elements {
            let src = t.offset + zip(index, t.stride).reduce(0) { $0 + $1.0 * $1.1 }
            (out + i * esize).copyMemory(from: bytes.pointer + base + src * esize, byteCount: esize)
            var d = t.shape.count - 1
            while d >= 0 { index[d] += 1; if index[d] < t.shape[d] { break }; index[d] = 0; d -= 1 }
        }
        let owned = StorageBytes(pointer: UnsafeRawPointer(out), count: elements * esize, release: { out.deallocate() })
        return StoredTensor(dtype: t.storage.dtype, shape: t.shape, storage: owned)
    }
}
