"""stockrnn: honest stock price forecasting with Keras recurrent and convolutional networks.

Importing this package must stay cheap: no keras, tensorflow or pandas here.
"""

__version__ = "0.1.0"
