import pytest
import torch

from napari_cytomask.progress import host_out_of_memory, out_of_memory


@pytest.mark.parametrize(
    "err",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."),
        RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously"),
        # A nearly full GPU fails in CUDA's libraries first: no advice was given, and SAM2
        # did not retry with a smaller batch.
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        RuntimeError("cuFFT error: CUFFT_ALLOC_FAILED"),
    ],
)
def test_a_gpu_out_of_memory_is_told_however_cuda_says_it(err):
    assert out_of_memory(err) and not host_out_of_memory(err)


def test_other_cuda_errors_are_not_taken_for_memory_running_out():
    assert not out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED"))
    assert not out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED"))


def test_sam2_progress_says_what_it_counts():
    """SAM2's progress read "Encoding the image: 16 of 32", a number with no unit: both its
    stages count the prompt points of every crop."""
    from napari_cytomask.progress import progress_text

    assert progress_text("encoder", 16, 32) == "Encoding the image: 16 of 32 prompt points"
    assert progress_text("decoder", 16, 32, 30) == (
        "Decoding masks: 16 of 32 prompt points; about 30 s left"
    )
    assert progress_text("predict", 3, 40) == "Predicting tiles: 3 of 40"  # said by its name
