import XCTest
@testable import LLVMKit

final class HostTargetTests: XCTestCase {
    func testHostIsKnownToLLVM() {
        let host = HostTarget.current
        XCTAssertFalse(host.cpuName.isEmpty)
        XCTAssertTrue(host.triple.contains("-"), host.triple)
        XCTAssertTrue([128, 256, 512].contains(host.vectorBits))
    }
}
