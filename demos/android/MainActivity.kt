package com.example.slsdk

import android.Manifest.permission.CAMERA
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.Color
import android.graphics.Matrix
import android.os.Bundle
import android.view.Gravity
import android.widget.FrameLayout
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/** Front camera -> SignRecognizer on one background thread; a live line and the last sentences on screen. */
class MainActivity : ComponentActivity() {
    private lateinit var preview: PreviewView
    private lateinit var caption: TextView
    private val analysisThread: ExecutorService = Executors.newSingleThreadExecutor()
    private var recognizer: SignRecognizer? = null  // used only on analysisThread
    private val sentences = ArrayDeque<String>()

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else caption.text = "camera permission denied"
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        preview = PreviewView(this)
        caption = TextView(this).apply {
            setTextColor(Color.WHITE)
            setBackgroundColor(Color.argb(128, 0, 0, 0))
            textSize = 20f
            setPadding(24, 24, 24, 24)
        }
        setContentView(FrameLayout(this).apply {
            addView(preview)
            addView(caption, FrameLayout.LayoutParams(FrameLayout.LayoutParams.MATCH_PARENT,
                FrameLayout.LayoutParams.WRAP_CONTENT, Gravity.BOTTOM))
        })
        analysisThread.execute {  // load the bundle off the UI thread, on the thread that will use it
            try {
                recognizer = SignRecognizer.fromAssets(assets)
                runOnUiThread {
                    val granted = ContextCompat.checkSelfPermission(this, CAMERA) == PackageManager.PERMISSION_GRANTED
                    if (granted) startCamera() else askCamera.launch(CAMERA)
                }
            } catch (e: Exception) {
                runOnUiThread { caption.text = "cannot load the bundle: ${e.message}" }
            }
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            // KEEP_ONLY_LATEST drops frames while the model is busy instead of queueing them; the recognizer's
            // FrameRateGate resamples the rest to the manifest's fps by timestamp
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(analysisThread, ::analyze)
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_FRONT_CAMERA, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun analyze(image: ImageProxy) {
        val rec = recognizer ?: return image.close()
        val timeS = image.imageInfo.timestamp / 1e9
        val frame = image.use { it.toBitmap().rotated(it.imageInfo.rotationDegrees) }
        rec.accept(frame, timeS)
        val line = rec.text
        var sentence: String? = null
        if (rec.isEndpoint) {  // a pause after glosses (or a long silence): close the sentence
            if (line.isNotEmpty()) sentence = line
            rec.reset()
        }
        runOnUiThread {
            sentence?.let { sentences.addLast(it); if (sentences.size > 3) sentences.removeFirst() }
            caption.text = (sentences + (if (sentence == null) line else "")).joinToString("\n")
        }
    }

    override fun onDestroy() {
        super.onDestroy()
        analysisThread.execute { recognizer?.close() }
        analysisThread.shutdown()
    }
}

/** Upright frames, as phones record signing (no mirroring: the model saw recorded, unmirrored video). */
private fun Bitmap.rotated(degrees: Int): Bitmap =
    if (degrees == 0) this else Bitmap.createBitmap(this, 0, 0, width, height, Matrix().apply { postRotate(degrees.toFloat()) }, true)
