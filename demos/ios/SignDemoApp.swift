import SwiftUI

/// The app: the bundle folder ships in the app as a folder reference named "bundle"
/// (manifest.json + model.mlpackage, as `slsdk convert --target coreml` writes it).
@main
struct SignDemoApp: App {
    var body: some Scene {
        WindowGroup {
            if let url = Bundle.main.url(forResource: "bundle", withExtension: nil) {
                CameraView(bundleURL: url)
            } else {
                Text("Add the slsdk bundle folder to the app as a folder reference named \"bundle\".")
                    .padding()
            }
        }
    }
}
