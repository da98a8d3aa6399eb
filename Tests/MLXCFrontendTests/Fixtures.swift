import Foundation

/// The committed fixtures: `Tests/Fixtures/<name>/model.pte` (+ `model.ptd`), `meta.json`, step files.
enum Fixtures {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct Fixture {
        let name: String
        let directory: URL
        var model: String { directory.appendingPathComponent("model.pte").path }
        var externalData: [String] {
            let ptd = directory.appendingPathComponent("model.ptd").path
            return FileManager.default.fileExists(atPath: ptd) ? [ptd] : []
        }
        var meta: [String: Any] {
            guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent("meta.json").path),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return object
        }
    }

    static var all: [Fixture] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.sorted().compactMap { name in
            let dir = root.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.pte").path) else { return nil }
            return Fixture(name: name, directory: dir)
        }
    }

    /// The zoo's committed programs (`Tests/Fixtures/zoo/<entry>/model.pte`: what ExecuTorch's own scripts wrote).
    static var zoo: [Fixture] {
        let zooRoot = root.appendingPathComponent("zoo")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: zooRoot.path)) ?? []
        return names.sorted().compactMap { name in
            let dir = zooRoot.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.pte").path) else { return nil }
            return Fixture(name: "zoo/" + name, directory: dir)
        }
    }
}
