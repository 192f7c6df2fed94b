import Foundation

/// Where a tensor's elements live. Every op runs on the backend of its operands' device.
package enum Device: Sendable, Hashable, CustomStringConvertible {
    case cpu

    package var description: String {
        switch self {
        case .cpu: "cpu"
        }
    }

    /// The backend that runs ops on this device's tensors.
    package var backend: any Backend {
        switch self {
        case .cpu: CPUBackend.shared
        }
    }
}

/// One allocation of `count` float32 elements on a device, shared by a tensor and its views.
/// The address means something only to the backend of `device` (for the CPU, host memory,
/// 64-byte aligned); nothing outside a backend reads it.
package final class Storage: @unchecked Sendable {
    package let device: Device
    package let count: Int
    package let address: UnsafeMutableRawPointer
    private let release: (UnsafeMutableRawPointer) -> Void

    /// `release` returns `address` to the device's allocator when the last view is gone.
    package init(device: Device, count: Int, address: UnsafeMutableRawPointer, release: @escaping (UnsafeMutableRawPointer) -> Void) {
        self.device = device
        self.count = count
        self.address = address
        self.release = release
        TensorMemory.allocated(count * 4)
    }

    deinit {
        release(address)
        TensorMemory.freed(count * 4)
    }
}

/// Bytes held by live tensor storage now and at most since the last reset (what PyTorch reports
/// as `max_memory_allocated`): the model's own memory, apart from the process's other allocations.
package enum TensorMemory {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var live = 0
    nonisolated(unsafe) private static var peak = 0

    static func allocated(_ bytes: Int) {
        lock.lock(); live += bytes; peak = max(peak, live); lock.unlock()
    }
    static func freed(_ bytes: Int) { lock.lock(); live -= bytes; lock.unlock() }

    package static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }
    package static var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return peak }
    /// Starts a new peak from the current live bytes.
    package static func resetPeak() { lock.lock(); peak = live; lock.unlock() }
}
