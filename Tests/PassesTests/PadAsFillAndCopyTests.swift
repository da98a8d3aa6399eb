import XCTest
import MLXCIR
@testable import MLXCPasses

/// pad-as-fill-and-copy, text in → text out: ExecuTorch's mel preprocessor pads the waveform to whole chunks with a
/// width computed at run time; a constant pad of one axis becomes full + slice_update (both compiled), a pad of several axes
/// that per axis; edge pads stay.
final class PadAsFillAndCopyTests: XCTestCase {
    func testOneAxisConstantPadIsFillThenSliceUpdate() throws {
        let (text, changes) = try runPass(PadAsFillAndCopy(), on: """
        graph @f
        input %0 : f32[?1..9000] "waveform"
        input %1 : i64[] "width"
        block main {
          %2 = pad(x: %0, pad_width: [0, %1], mode: "constant", constant_value: 0.0) : f32[?1..18000]
        }
        outputs %2
        """)
        XCTAssertEqual(changes, 1)
        XCTAssertEqual(text.components(separatedBy: "\n"), [
            "%3 = sym_size(a: %0, dim: 0) : i64[]",
            "%4 = add_int(a: %3, b: 0) : i64[]",
            "%5 = add_int(a: %4, b: %1) : i64[]",
            "%6 = add_int(a: 0, b: %3) : i64[]",
            "%7 = full(shape: [%5], v: 0.0, scalar_type: f32) : f32[?1..18000]",
            "%2 = slice_update(dst: %7, update: %0, axis: 0, start: 0, stop: %6, step: 1) : f32[?1..18000]",
        ])
    }

    /// A pad whose input the importer left untyped (an MLX delegate's intermediate): the pass infers its type.
    func testUntypedInputIsInferred() throws {
        let (text, changes) = try runPass(PadAsFillAndCopy(), on: """
        graph @f
        input %0 : f32[1, 32, ?1..24000] "x"
        block main {
          %1 = gelu(x: %0, approximate: "none") : ?
          %2 = pad(x: %1, pad_width: [0, 0, 0, 0, 2, 0], mode: "constant", constant_value: 0.0) : ?
        }
        outputs %2
        """)
        XCTAssertEqual(changes, 1)
        XCTAssertTrue(text.contains("full(shape: [1, 32, %"), text)
        XCTAssertTrue(text.contains("slice_update(dst: %"), text)
        XCTAssertFalse(text.contains("pad("), text)
    }

    /// TF-style "same" padding before a vision model's strided conv (NHWC, H and W, asymmetric): one axis after the
    /// other; a pad of all-zero widths (before a 1x1 conv) is a copy.
    func testImagePadIsTwoFillsAndAZeroPadIsACopy() throws {
        let (text, changes) = try runPass(PadAsFillAndCopy(), on: """
        graph @f
        input %0 : f32[1, 8, 8, 4] "x"
        block main {
          %1 = pad(x: %0, pad_width: [0, 0, 0, 1, 0, 1, 0, 0], mode: "constant", constant_value: 0.0) : f32[1, 9, 9, 4]
          %2 = pad(x: %0, pad_width: [0, 0, 0, 0, 0, 0, 0, 0], mode: "constant", constant_value: 0.0) : f32[1, 8, 8, 4]
        }
        outputs %1, %2
        """)
        XCTAssertEqual(changes, 2)
        let lines = text.components(separatedBy: "\n")
        XCTAssertEqual(lines.filter { $0.contains("full(shape: [1, %") && $0.contains(", 8, 4]") }.count, 1, text)
        XCTAssertEqual(lines.filter { $0.contains("full(shape: [1, %") && $0.contains(", %") }.count, 2, text)
        XCTAssertEqual(lines.filter { $0.contains("slice_update(") && $0.contains("axis: 1") }.count, 1, text)
        XCTAssertEqual(lines.filter { $0.hasPrefix("%1 = slice_update(") && $0.contains("axis: 2") }.count, 1, text)
        XCTAssertTrue(lines.contains("%2 = id_copy(x: %0) : f32[1, 8, 8, 4]"), text)
        XCTAssertFalse(text.contains("pad("), text)
    }

    func testEdgePadsStay() throws {
        try assertPassLeavesUnchanged(PadAsFillAndCopy(), on: """
        graph @f
        input %0 : f32[4, 8] "x"
        block main {
          %1 = pad(x: %0, pad_width: [0, 0, 2, 2], mode: "edge", constant_value: 0.0) : f32[4, 12]
        }
        outputs %1
        """, "edge mode: left to the reference executor")
    }
}
