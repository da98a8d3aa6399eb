import FuzzSupport
import MLXCFrontend

/// An XNNPACK delegate payload on its own: the XH00 header, the XNNGraph flatbuffer (values, nodes,
/// quantization parameters, cross-checks), then every constant located. The inliner itself runs on
/// payloads inside whole programs (target `pte`).
let xnnPayloadTarget = FuzzTarget(
    name: "xnn-payload",
    summary: "XNNPACK delegate payload: XH00 header, XNNGraph flatbuffer, constants",
    run: { bytes in
        let file = MappedFile(bytes: bytes, name: "fuzz.xnn")
        let payload = try XNNPayload(file.ownedView, space: "fuzz payload", fileOffset: 0)
        _ = payload.graph.nodeHistogram
        for index in payload.graph.constantData.indices.dropFirst() {
            _ = try? payload.constant(index, "constant \(index)")
        }
    },
    seeds: { fixtures, corpus in
        for (name, bytes) in try PTEProgramFuzz.payloads(XNNPayload.backendID, fixtures: fixtures) {
            try Seeds.write(bytes, name + ".xnn", to: corpus)
        }
    })
