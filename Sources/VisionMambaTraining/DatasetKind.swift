/// The datasets a run trains or evaluates on (`--data-set`), stored in checkpoints by raw value.
public enum DatasetKind: String, CaseIterable, Sendable {
    /// The small digits dataset bundled with the package.
    case digits
    case cifar10, cifar100
    /// An ImageFolder: `train/<class>/` and `val/<class>/`.
    case imagefolder
    /// Recognised from the folder's contents: CIFAR batches of either format, else ImageFolder.
    case auto
    /// Segmentation: the bundled digit scenes (1–4 digits per canvas; background and ten digits).
    case digitScenes = "digit-scenes"
    /// Segmentation: ADE20K's `ADEChallengeData2016` folder (150 classes, reduce_zero_label).
    case ade20k
    /// Segmentation: mmseg's layout, images/{training,validation} with annotations/…, any class count.
    case segfolder

    /// Whether the dataset labels pixels rather than images.
    public var isSegmentation: Bool { [.digitScenes, .ade20k, .segfolder].contains(self) }

    /// The dataset a name means, in any letter case: a raw value, or the official code's
    /// cifar-10, cifar-100, cifar (which means CIFAR-100 there) and imnet (an ImageFolder).
    public init(name: String) throws {
        switch name.lowercased() {
        case "cifar-10": self = .cifar10
        case "cifar-100", "cifar": self = .cifar100
        case "imnet": self = .imagefolder
        case let lowered:
            guard let kind = DatasetKind(rawValue: lowered) else {
                throw TrainingError.unknownDataset(name: name, valid: DatasetKind.allCases.map(\.rawValue))
            }
            self = kind
        }
    }
}

extension DatasetKind: Codable {
    /// Checkpoints written before this type stored the name as given on the command line, so
    /// every name `init(name:)` accepts is read back.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let name = try container.decode(String.self)
        do {
            try self.init(name: name)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(error)")
        }
    }

    /// Encodes the raw name (`digits`, `cifar10`, …).
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
