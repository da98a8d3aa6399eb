import Foundation
import XCTest
@testable import MLXCFrontend

/// Inputs the long fuzzing runs found (issue 17), kept as committed files under
/// `Tests/Fixtures/fuzz_regressions/`: each must now be one clean error, not a trap.
final class FuzzRegressionTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fuzz_regressions")

    /// `tools/fuzz ptd`, 2026-12-07, after 210 737 executions: a FlatTensor segment whose offset + size fits
    /// in 64 bits but whose end past the FH01 segment base does not — `UInt64(base) + end` trapped
    /// (arithmetic overflow). PTEFile's segment check had the same sum and is fixed alike.
    func testPTDSegmentEndPastTheBaseOverflowIsAnError() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.directory.appendingPathComponent("ptd_segment_end_overflow.ptd")))
        XCTAssertThrowsError(try PTDFile(file: MappedFile(bytes: bytes, name: "crash.ptd"))) { error in
            XCTAssertTrue(error is FormatError, "\(error)")
            XCTAssertTrue("\(error)".contains("FlatTensor.segments[") && "\(error)".contains("runs past the file end"), "\(error)")
        }
    }
}
