"""The twostage Gradio app, and the Hugging Face Space's entry (app_file: app.py).

    python app.py                                  # the models run_pipeline.sh wrote to runs/
    python app.py --models runs/vae user/mnist-vqvae-pixelcnn
    TWOSTAGE_MODELS="user/mnist-vqvae-pixelcnn user/mnist-classifier" python app.py    # as a Space runs it

The app itself is in gradio_app/; `python app.py --help` lists the options.
"""

from gradio_app.launch import main

if __name__ == "__main__":
    main()
