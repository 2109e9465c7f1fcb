// app/build.gradle.kts (snippet): what the sample needs on top of a new "Empty Activity" project.
// Versions are assumptions, not tested here (no Android SDK on the CI machine): onnxruntime-android is
// taken to match the onnxruntime 1.31 that slsdk converts and checks bundles with; pick current CameraX.

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "com.example.slsdk"
    compileSdk = 35
    defaultConfig {
        applicationId = "com.example.slsdk"
        minSdk = 24  // ONNX Runtime Mobile: Android 7+
        targetSdk = 35
    }
    androidResources {
        noCompress += listOf("onnx", "ort", "pte")  // keep model assets mmap-able / fast to read
    }
}

dependencies {
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.31.0")  // assumption: ORT 1.31-ish
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.camera:camera-core:1.4.1")
    implementation("androidx.camera:camera-camera2:1.4.1")
    implementation("androidx.camera:camera-lifecycle:1.4.1")
    implementation("androidx.camera:camera-view:1.4.1")
    // ExecuTorch instead of ONNX Runtime (the bundle's .pte; see README.md). Assumption: the AAR release
    // matching the executorch package that wrote the .pte (slsdk converts with executorch 1.5.1)
    // implementation("org.pytorch:executorch-android:1.5.1")
}
