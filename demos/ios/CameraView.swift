import AVFoundation
import SwiftUI

/// Front camera -> SignRecognizer on one serial queue; publishes the live line and the finished sentences.
final class CameraModel: NSObject, ObservableObject, AVCaptureVideoDataOutputSampleBufferDelegate {
    @Published var live = ""
    @Published var sentences: [String] = []
    @Published var error: String?

    let session = AVCaptureSession()
    private let queue = DispatchQueue(label: "slsdk.camera")
    private var recognizer: SignRecognizer?  // touched only on `queue`

    func start(bundleURL: URL) {
        Task {
            do {
                let rec = try await SignRecognizer.load(bundleURL: bundleURL)
                try configure(fps: rec.manifest.fps)
                queue.async {
                    self.recognizer = rec
                    self.session.startRunning()
                }
            } catch {
                await MainActor.run { self.error = "\(error)" }
            }
        }
    }

    private func configure(fps: Double) throws {
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .front) else {
            throw ManifestError.unsupported("no front camera")
        }
        session.beginConfiguration()
        defer { session.commitConfiguration() }
        session.sessionPreset = .vga640x480  // the model sees S x S pixels: a small preset saves work
        let input = try AVCaptureDeviceInput(device: device)
        if session.canAddInput(input) { session.addInput(input) }
        let output = AVCaptureVideoDataOutput()
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
        output.alwaysDiscardsLateVideoFrames = true  // drop, never queue, frames while the model is busy
        output.setSampleBufferDelegate(self, queue: queue)
        if session.canAddOutput(output) { session.addOutput(output) }
        if let connection = output.connection(with: .video), connection.isVideoRotationAngleSupported(90) {
            connection.videoRotationAngle = 90  // upright portrait frames, as phones record signing
        }
        // ask for the manifest's frame rate where the camera supports it; the FrameRateGate handles the rest
        let supported = device.activeFormat.videoSupportedFrameRateRanges
            .contains { $0.minFrameRate <= fps && fps <= $0.maxFrameRate }
        if supported {
            try device.lockForConfiguration()
            let duration = CMTime(seconds: 1.0 / fps, preferredTimescale: 600)
            device.activeVideoMinFrameDuration = duration
            device.activeVideoMaxFrameDuration = duration
            device.unlockForConfiguration()
        }
    }

    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer,
                       from connection: AVCaptureConnection) {
        guard let rec = recognizer, let pixels = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        let time = CMSampleBufferGetPresentationTimeStamp(sampleBuffer).seconds
        do {
            try rec.accept(pixels, time: time)
            let line = rec.text
            var sentence: String?
            if rec.isEndpoint {  // a pause after glosses (or a long silence): close the sentence
                sentence = line.isEmpty ? nil : line
                rec.reset()
            }
            DispatchQueue.main.async {
                self.live = sentence == nil ? line : ""
                if let s = sentence { self.sentences.append(s) }
            }
        } catch {
            DispatchQueue.main.async { self.error = "\(error)" }
        }
    }
}

/// The camera preview layer in SwiftUI.
struct CameraPreview: UIViewRepresentable {
    let session: AVCaptureSession

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        view.previewLayer.session = session
        view.previewLayer.videoGravity = .resizeAspectFill
        return view
    }

    func updateUIView(_ uiView: PreviewView, context: Context) {}
}

/// Preview with the recognised sentences and the live line over it.
struct CameraView: View {
    let bundleURL: URL
    @StateObject private var camera = CameraModel()

    var body: some View {
        ZStack(alignment: .bottom) {
            CameraPreview(session: camera.session).ignoresSafeArea()
            VStack(alignment: .leading, spacing: 4) {
                ForEach(Array(camera.sentences.suffix(3).enumerated()), id: \.offset) { Text($0.element) }
                Text(camera.live).bold()
                if let error = camera.error { Text(error).foregroundStyle(.red) }
            }
            .frame(maxWidth: .infinity, alignment: .leading)
            .padding()
            .background(.black.opacity(0.5))
            .foregroundStyle(.white)
        }
        .onAppear { camera.start(bundleURL: bundleURL) }
    }
}
