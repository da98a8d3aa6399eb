import Foundation
import FuzzSupport
import MLXCFrontend

/// An ExecuTorch `.ptd` (external named data): FH01 header, FlatTensor flatbuffer, segments, and
/// every named tensor's bytes located.
let ptdTarget = FuzzTarget(
    name: "ptd",
    summary: ".ptd external data: FH01 header, FlatTensor flatbuffer, every named tensor located",
    run: { bytes in
        let ptd = try PTDFile(file: MappedFile(bytes: bytes, name: "fuzz.ptd"))
        for key in ptd.keys { _ = try ptd.data(for: key) }
    },
    seeds: { fixtures, corpus in
        for file in Seeds.files(under: fixtures, suffix: ".ptd") {
            try Seeds.write([UInt8](try Data(contentsOf: file)), Seeds.relative(file, fixtures), to: corpus)
        }
    })
